// OpenMP shim: the core builds and runs serially when the compiler has no OpenMP.
#pragma once

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

inline bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace pyani
