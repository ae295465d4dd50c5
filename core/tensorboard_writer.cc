#include "core/tensorboard_writer.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/file_util.h"
#include "core/log.h"
#include "core/status.h"
#include "core/tfrecord.h"

namespace sinklab {
namespace {

// Bounded so that a directory full of same-second files cannot loop for long.
constexpr int kMaxNameAttempts = 1000;

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

std::string EventFileName(int64_t unix_seconds, const std::string& hostname) {
  return absl::StrCat("events.out.tfevents.", unix_seconds, ".", hostname);
}

double WallTimeNow() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Open(
    const std::string& run_dir) {
  SL_RETURN_IF_ERROR(MakeDirs(run_dir));
  const std::string base =
      absl::StrCat(run_dir, "/", EventFileName(absl::ToUnixSeconds(absl::Now()), HostName()));
  for (int attempt = 0; attempt < kMaxNameAttempts; ++attempt) {
    const std::string path = attempt == 0 ? base : absl::StrCat(base, ".", attempt);
    // "x": fail instead of truncating when the file exists (C11 exclusive mode).
    std::FILE* file = std::fopen(path.c_str(), "wbx");
    if (file == nullptr && errno == EEXIST) continue;
    if (file == nullptr) {
      return absl::PermissionDeniedError(
          absl::StrCat(path, ": cannot create event file: ", std::strerror(errno)));
    }
    std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(path, file));
    tb::Event event;
    event.set_wall_time(WallTimeNow());
    event.set_file_version(kEventFileVersion);
    SL_RETURN_IF_ERROR(writer->WriteEvent(event));
    SL_RETURN_IF_ERROR(writer->Flush());
    return writer;
  }
  return absl::AlreadyExistsError(
      absl::StrCat(base, ": this name and ", kMaxNameAttempts - 1, " numbered variants exist"));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ == nullptr) return;
  const absl::Status status = Close();
  if (!status.ok()) LogError(status.ToString());
}

absl::Status TensorBoardWriter::AddScalar(const std::string& tag, int64_t step, float value,
                                          double wall_time) {
  return AddScalars(step, {{tag, value}}, wall_time);
}

absl::Status TensorBoardWriter::AddScalars(
    int64_t step, const std::vector<std::pair<std::string, float>>& tag_values, double wall_time) {
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tb::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : tag_values) {
    tb::Summary::Value* summary_value = summary->add_value();
    summary_value->set_tag(tag);
    summary_value->set_simple_value(value);
  }
  return WriteEvent(event);
}

absl::Status TensorBoardWriter::WriteEvent(const tb::Event& event) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": event file already closed"));
  }
  std::string serialized;
  if (!event.SerializeToString(&serialized)) {
    return absl::InternalError(absl::StrCat(path_, ": cannot serialize an Event"));
  }
  std::string record;
  AppendTfRecord(serialized, &record);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    return absl::DataLossError(absl::StrCat(path_, ": write failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::Flush() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": event file already closed"));
  }
  if (std::fflush(file_) != 0) {
    return absl::DataLossError(absl::StrCat(path_, ": flush failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status TensorBoardWriter::Close() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": event file already closed"));
  }
  const int flush_result = std::fflush(file_);
  const int flush_errno = errno;
  const int close_result = std::fclose(file_);
  file_ = nullptr;
  if (flush_result != 0 || close_result != 0) {
    return absl::DataLossError(absl::StrCat(
        path_, ": flush/close failed: ", std::strerror(flush_result != 0 ? flush_errno : errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<tb::Event>> ReadEventFile(const std::string& path) {
  SL_ASSIGN_OR_RETURN(const std::vector<std::string> records, ReadTfRecords(path));
  std::vector<tb::Event> events(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    if (!events[i].ParseFromString(records[i])) {
      return absl::DataLossError(absl::StrCat(path, ": record ", i, " (", records[i].size(),
                                              " bytes) is not a serialized Event"));
    }
  }
  return events;
}

}  // namespace sinklab
