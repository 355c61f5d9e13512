// OpenMP shim: the core builds and runs serially when the compiler has no OpenMP.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pyani {

// 0 means "as many as OpenMP would use by default" (OMP_NUM_THREADS, else the core count).
inline int resolve_threads(int n_threads) {
#ifdef _OPENMP
    return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
    (void)n_threads;
    return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// An exception must not leave an OpenMP region: the runtime would call std::terminate and
// take the Python process with it. Work inside a region goes through guard(), which keeps
// the first exception (in practice std::bad_alloc from a per-thread buffer) and skips the
// work that remains; rethrow() raises it after the region, where the bindings turn it into
// a Python exception (MemoryError).
class FirstError {
public:
    template <class Work>
    void guard(Work&& work) noexcept {
        if (failed_.load(std::memory_order_relaxed)) return;
        try {
            work();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
        }
    }

    void rethrow() const {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::atomic<bool> failed_{false};
    std::mutex mutex_;
    std::exception_ptr error_;
};

inline bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace pyani
