// The default job, configs/tiny.textproto, compiled into the library (configs/CMakeLists.txt
// generates embedded_tiny_config.cc from the file at configure time), so `sinklab train`
// with no config file trains the tiny model from any working directory.
#ifndef SINKLAB_CONFIGS_EMBEDDED_CONFIG_H_
#define SINKLAB_CONFIGS_EMBEDDED_CONFIG_H_

namespace sinklab {

// How errors and the run log name the embedded text.
inline constexpr char kEmbeddedTinyConfigName[] = "<embedded configs/tiny.textproto>";

// The text of configs/tiny.textproto as it was when the library was built.
const char* EmbeddedTinyConfigText();

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_EMBEDDED_CONFIG_H_
