// Per-call buffers of big systems (pair lists, per-pair gradients: hundreds of MB for 1e5
// atoms) are fresh memory on every call, and the kernel hands it over one 4 KB page fault at
// a time: at 98k waters that was 126k faults and 0.5 s of system time per 2.6 s call.
// Buffers of 2 MB or more are therefore aligned to 2 MB and advised to use transparent huge
// pages (as NumPy does for its arrays), which makes the faults 512 times fewer.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyani {

constexpr size_t HUGE_PAGE = size_t(2) << 20;

// Memory for n objects of T, released with std::free; throws std::bad_alloc.
template <typename T>
T* allocate_large(size_t n) {
    const size_t bytes = n * sizeof(T);
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
    return static_cast<T*>(p);
}

template <typename T>
struct LargeAllocator {
    using value_type = T;
    LargeAllocator() = default;
    template <typename U>
    LargeAllocator(const LargeAllocator<U>&) {}
    T* allocate(size_t n) { return allocate_large<T>(n); }
    void deallocate(T* p, size_t) { std::free(p); }
    template <typename U>
    bool operator==(const LargeAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const LargeAllocator<U>&) const { return false; }
};

template <typename T>
using LargeVector = std::vector<T, LargeAllocator<T>>;

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// An uninitialised array of n objects of T (trivial types only).
template <typename T>
using LargeArray = std::unique_ptr<T[], FreeDeleter>;

template <typename T>
LargeArray<T> make_large_array(size_t n) {
    return LargeArray<T>(allocate_large<T>(n));
}

}  // namespace pyani
