// libFuzzer entry point of one fuzz target: built once per target with
// SINKLAB_FUZZ_TARGET="<name>" (fuzz/CMakeLists.txt); the body is in fuzz/fuzz_entries.cc.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/status.h"
#include "fuzz/fuzz_entries.h"

#ifndef SINKLAB_FUZZ_TARGET
#error "compile with -DSINKLAB_FUZZ_TARGET=\"<name>\""
#endif

namespace {

sinklab::FuzzEntry FindEntry() {
  for (const sinklab::FuzzTarget& target : sinklab::FuzzTargets()) {
    if (std::strcmp(target.name, SINKLAB_FUZZ_TARGET) == 0) return target.entry;
  }
  SL_CHECK_MSG(false, "no fuzz target named " SINKLAB_FUZZ_TARGET);
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sinklab::FuzzEntry entry = FindEntry();
  (void)entry(data, size);  // rejecting an input is fine; crashes and SL_CHECKs are the bugs
  return 0;
}
