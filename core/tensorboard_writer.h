// TensorBoard scalar logs: an event file `<run_dir>/events.out.tfevents.<unix seconds>.
// <hostname>` (the name TensorFlow's EventsWriter gives, tensorflow/core/util/events_writer.cc)
// holding TFRecord-framed (core/tfrecord.h) serialized tb::Event protos
// (core/tensorboard.proto). The first record is the Event with file_version "brain.Event:2";
// each AddScalar/AddScalars call appends one Event with a Summary. `tensorboard --logdir
// runs/` then plots every run.
#ifndef SINKLAB_CORE_TENSORBOARD_WRITER_H_
#define SINKLAB_CORE_TENSORBOARD_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensorboard.pb.h"

namespace sinklab {

inline constexpr char kEventFileVersion[] = "brain.Event:2";

// "events.out.tfevents.<unix_seconds>.<hostname>".
std::string EventFileName(int64_t unix_seconds, const std::string& hostname);

// Seconds since the Unix epoch, as a double (an Event's wall_time).
double WallTimeNow();

// Appends events to one event file. Writes go through a stdio buffer: Flush() pushes them to
// the OS (call it at each log interval so TensorBoard sees fresh points); the destructor
// flushes and closes. Not thread-safe. Every error message names the file.
class TensorBoardWriter {
 public:
  // Creates `run_dir` if needed and a new event file in it, named with the current Unix time
  // and this host's name (".1", ".2", ... appended if that name exists: never overwrites),
  // and writes the file_version event. Errors name the file or directory.
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Open(const std::string& run_dir);

  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One Event {wall_time, step, summary {value {tag, simple_value: value}}}; wall_time in
  // seconds since the Unix epoch (WallTimeNow()).
  absl::Status AddScalar(const std::string& tag, int64_t step, float value, double wall_time);
  // One Event carrying all `tag_values` of a step (one Summary.Value each, in order).
  absl::Status AddScalars(int64_t step,
                          const std::vector<std::pair<std::string, float>>& tag_values,
                          double wall_time);
  // Pushes buffered events to the OS (fflush).
  absl::Status Flush();
  // Flushes and closes the file; later calls other than path() fail with FailedPrecondition.
  absl::Status Close();

  const std::string& path() const { return path_; }

 private:
  TensorBoardWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  absl::Status WriteEvent(const tb::Event& event);

  std::string path_;
  std::FILE* file_;
};

// Reads the event file at `path`: every record's CRCs are verified (ReadTfRecords) and each
// record must parse as a tb::Event; errors name the file and the record's byte offset or
// index. For tests and tools.
absl::StatusOr<std::vector<tb::Event>> ReadEventFile(const std::string& path);

}  // namespace sinklab

#endif  // SINKLAB_CORE_TENSORBOARD_WRITER_H_
