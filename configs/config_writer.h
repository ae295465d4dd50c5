// The resolved config of a run: every field with its effective value, schema defaults made
// explicit, so that re-running the saved text reproduces the run even if a default in
// configs/sinklab.proto changes later (DESIGN.md section 1: runs/<name>/config.textproto).
#ifndef SINKLAB_CONFIGS_CONFIG_WRITER_H_
#define SINKLAB_CONFIGS_CONFIG_WRITER_H_

#include <string>

#include "configs/sinklab.pb.h"

namespace sinklab {

// `config` with field presence made explicit: every unset singular scalar set to its schema
// default, every singular sub-message present (recursively), and an empty stats.eps filled
// with {kDefaultSinkEps}. Fields of a oneof stay as they are, and so do unset numbers with
// no declared default (e.g. optim.muon.lr), whose absence means "derived from other
// fields". Effective values unchanged.
Config ResolveConfigDefaults(const Config& config);

// Text format of ResolveConfigDefaults(config) (multi-line, fields in schema order); parses
// back (ParseConfigText) to exactly ResolveConfigDefaults(config).
std::string ConfigToText(const Config& config);

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_CONFIG_WRITER_H_
