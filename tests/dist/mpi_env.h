// The MPI tests' world (tests/dist/mpi_main.cc initializes it): every test of this binary
// runs on every rank of `mpirun -np 2` (or more), in the same order, so collectives inside
// tests match up.
#ifndef SINKLAB_TESTS_DIST_MPI_ENV_H_
#define SINKLAB_TESTS_DIST_MPI_ENV_H_

#include <string>

#include "absl/status/status.h"
#include "core/comm.h"

namespace sinklab {

Communicator& World();

// A fresh folder name for this test: this process's, or the same on every rank (rank 0's,
// broadcast; collective).
std::string LocalTestRoot(const std::string& tag);
std::string SharedTestRoot(const std::string& tag);

// A test must not leave other ranks waiting in a collective: a rank whose collective-bearing
// call failed ends the job (with its message) instead of returning early.
void CheckOkOrAbort(const absl::Status& status);

}  // namespace sinklab

#endif  // SINKLAB_TESTS_DIST_MPI_ENV_H_
