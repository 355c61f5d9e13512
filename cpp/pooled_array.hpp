// An output array that outlives the call that made it (it is handed to NumPy) and whose
// memory goes back to the pool it came from when its last owner lets go, so that the next
// call on a big system reuses it instead of faulting in fresh pages (large_buffer.hpp).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <utility>

#include "large_buffer.hpp"

namespace pyani {

// Smaller blocks are plain malloc: the allocator recycles those without page faults.
constexpr size_t POOLED_MIN_BYTES = size_t(64) << 10;

// n uninitialised objects of trivial type T. Blocks of POOLED_MIN_BYTES or more come from
// `pool` (when given) and go back to it: from that size on, malloc hands out fresh pages
// (mmap) and unmaps them on free, so a 1536-atom list faulted in its 2.4 MB on every call.
// Move-only.
template <typename T>
class PooledArray {
public:
    PooledArray() = default;
    PooledArray(std::shared_ptr<Scratch> pool, size_t n) : size_(n) {
        const size_t bytes = n * sizeof(T);
        if (bytes >= POOLED_MIN_BYTES && pool) {
            data_ = static_cast<T*>(pool->take(bytes));
            pool_ = std::move(pool);  // kept alive by this array: NumPy may free it after the pool's owner
        } else {
            data_ = static_cast<T*>(allocate_block(bytes));
        }
    }
    PooledArray(PooledArray&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          pool_(std::move(other.pool_)) {}
    PooledArray& operator=(PooledArray&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
            pool_ = std::move(other.pool_);
        }
        return *this;
    }
    PooledArray(const PooledArray&) = delete;
    PooledArray& operator=(const PooledArray&) = delete;
    ~PooledArray() { release(); }

    T* data() { return data_; }
    const T* data() const { return data_; }
    T* get() const { return data_; }
    size_t size() const { return size_; }
    T& operator[](size_t k) { return data_[k]; }
    const T& operator[](size_t k) const { return data_[k]; }

private:
    void release() {
        if (data_ && !(pool_ && pool_->give(data_))) std::free(data_);
        data_ = nullptr;
        pool_.reset();
    }

    T* data_ = nullptr;
    size_t size_ = 0;
    std::shared_ptr<Scratch> pool_;
};

// n uninitialised objects of T from `pool` (see PooledArray). Throws std::bad_alloc.
template <typename T>
PooledArray<T> take_pooled(const std::shared_ptr<Scratch>& pool, size_t n) {
    return PooledArray<T>(pool, n);
}

}  // namespace pyani
