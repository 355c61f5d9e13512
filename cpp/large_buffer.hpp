// Per-call buffers of big systems (pair lists, per-pair gradients: hundreds of MB for 1e5
// atoms) are fresh memory on every call, and the kernel hands it over one 4 KB page fault at
// a time: at 98k waters that was 126k faults and 0.5 s of system time per 2.6 s call.
// Buffers of 2 MB or more are therefore aligned to 2 MB and advised to use transparent huge
// pages (as NumPy does for its arrays), which makes the faults 512 times fewer.
//
// Fresh memory stays expensive even so (the kernel clears it, and on a virtual machine the
// host may have to back it: up to 2 s of system time per GB here), so a model also keeps a
// Scratch pool whose blocks the next call reuses. Two ways in: inside a ScratchScope, big
// buffers of one call (LargeVector, LargeArray) come from the scope's pool and go back to it
// before the scope ends; PooledArray blocks (pooled_array.hpp: the AEV pass's index, the
// arrays handed to NumPy) go back to their pool whenever and wherever they are freed.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyani {

constexpr size_t HUGE_PAGE = size_t(2) << 20;

// A new block of at least `bytes`, 2 MB aligned and advised to use huge pages when that big;
// release with std::free. Throws std::bad_alloc.
inline void* allocate_block(size_t bytes) {
    void* p = nullptr;
    if (bytes >= HUGE_PAGE) {
        const size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;  // aligned_alloc wants a multiple
        p = std::aligned_alloc(HUGE_PAGE, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
    } else {
        p = std::malloc(bytes > 0 ? bytes : 1);
    }
    if (!p) throw std::bad_alloc();
    return p;
}

// Big buffers kept between calls for reuse. Thread-safe; what it holds is freed with it.
// Blocks taken inside a ScratchScope must be given back inside it (kernel-local buffers
// only: nothing that is handed to NumPy).
class Scratch {
public:
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() {
        for (auto& [size, p] : free_) std::free(p);
    }

    // A free block of `bytes` to twice that (a bigger one would strand memory), else a new
    // one with 1/8 headroom, so that the next call of an MD run, a few pairs more, still fits.
    // A miss also frees the free blocks it outgrew (from bytes/2 to bytes): without that, a
    // run whose pair count keeps setting new highs would keep every older block.
    void* take(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.lower_bound(bytes);
            if (it != free_.end() && it->first <= 2 * bytes) {
                void* p = it->second;
                free_.erase(it);
                return p;
            }
            for (auto old = free_.lower_bound(bytes / 2); old != free_.end() && old->first < bytes;) {
                std::free(old->second);
                owned_.erase(old->second);
                old = free_.erase(old);
            }
        }
        const size_t size = bytes + bytes / 8;
        void* p = allocate_block(size);
        std::lock_guard<std::mutex> lock(mutex_);
        owned_[p] = size;
        return p;
    }

    // Keeps p for reuse if it came from this pool; false otherwise (the caller frees it).
    bool give(void* p) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = owned_.find(p);
        if (it == owned_.end()) return false;
        free_.emplace(it->second, p);
        return true;
    }

    size_t retained_bytes() const {
        std::lock_guard<std::mutex> lock(mutex_);
        size_t total = 0;
        for (const auto& [p, size] : owned_) total += size;
        return total;
    }

private:
    mutable std::mutex mutex_;
    std::multimap<size_t, void*> free_;          // size -> block
    std::unordered_map<void*, size_t> owned_;    // every block this pool made, in use or free
};

// The pool that big allocations of this thread use, if any (set by ScratchScope).
inline thread_local Scratch* active_scratch = nullptr;

class ScratchScope {
public:
    explicit ScratchScope(Scratch* scratch) : previous_(active_scratch) { active_scratch = scratch; }
    ~ScratchScope() { active_scratch = previous_; }
    ScratchScope(const ScratchScope&) = delete;
    ScratchScope& operator=(const ScratchScope&) = delete;

private:
    Scratch* previous_;
};

// Memory for n objects of T: from the active pool when big, else new; release with
// release_large. Throws std::bad_alloc.
template <typename T>
T* allocate_large(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= HUGE_PAGE && active_scratch) return static_cast<T*>(active_scratch->take(bytes));
    return static_cast<T*>(allocate_block(bytes));
}

inline void release_large(void* p) {
    if (p && active_scratch && active_scratch->give(p)) return;
    std::free(p);
}

template <typename T>
struct LargeAllocator {
    using value_type = T;
    LargeAllocator() = default;
    template <typename U>
    LargeAllocator(const LargeAllocator<U>&) {}
    T* allocate(size_t n) { return allocate_large<T>(n); }
    void deallocate(T* p, size_t) { release_large(p); }
    template <typename U>
    bool operator==(const LargeAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const LargeAllocator<U>&) const { return false; }
};

template <typename T>
using LargeVector = std::vector<T, LargeAllocator<T>>;

struct ReleaseLarge {
    void operator()(void* p) const { release_large(p); }
};

// An uninitialised array of n objects of T (trivial types only).
template <typename T>
using LargeArray = std::unique_ptr<T[], ReleaseLarge>;

template <typename T>
LargeArray<T> make_large_array(size_t n) {
    return LargeArray<T>(allocate_large<T>(n));
}

}  // namespace pyani
