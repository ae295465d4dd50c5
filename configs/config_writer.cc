#include "configs/config_writer.h"

#include "absl/strings/str_cat.h"
#include "configs/config_util.h"
#include "core/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"

namespace sinklab {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Sets an unset singular scalar `field` of `message` to its schema default (which makes the
// field present without changing its value).
void SetToDefault(const FieldDescriptor* field, const Reflection* reflection,
                  Message* message) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      reflection->SetInt32(message, field, field->default_value_int32());
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      reflection->SetInt64(message, field, field->default_value_int64());
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      reflection->SetUInt32(message, field, field->default_value_uint32());
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      reflection->SetUInt64(message, field, field->default_value_uint64());
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      reflection->SetFloat(message, field, field->default_value_float());
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      reflection->SetDouble(message, field, field->default_value_double());
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      reflection->SetBool(message, field, field->default_value_bool());
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      reflection->SetEnum(message, field, field->default_value_enum());
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      reflection->SetString(message, field, field->default_value_string());
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      SL_CHECK_MSG(false, absl::StrCat(field->full_name(), " is a message, not a scalar"));
  }
}

// A number field with no declared default: in this schema its absence carries meaning, a
// value derived from other fields (model.attention.sigmoid_bias, optim.muon.lr,
// optim.muon.weight_decay), so writing the implicit 0 would change the run on reload.
bool DerivedWhenUnset(const FieldDescriptor* field) {
  return !field->has_default_value() &&
         field->cpp_type() != FieldDescriptor::CPPTYPE_STRING &&
         field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE;
}

// Makes every singular field of `message` present but DerivedWhenUnset ones, recursively (a
// walk of the descriptor, so fields added to the schema later are covered without touching
// this file).
void MakePresenceExplicit(Message* message) {
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  const Reflection* reflection = message->GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) continue;
    // Setting a oneof member would clear its siblings: keep whichever the user chose.
    if (field->real_containing_oneof() != nullptr && !reflection->HasField(*message, field)) {
      continue;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      MakePresenceExplicit(reflection->MutableMessage(message, field));
    } else if (!reflection->HasField(*message, field) && !DerivedWhenUnset(field)) {
      SetToDefault(field, reflection, message);
    }
  }
}

}  // namespace

Config ResolveConfigDefaults(const Config& config) {
  Config resolved = config;
  MakePresenceExplicit(&resolved);
  if (resolved.stats().eps_size() == 0) {
    for (float eps : SinkEpsList(resolved.stats())) resolved.mutable_stats()->add_eps(eps);
  }
  return resolved;
}

std::string ConfigToText(const Config& config) {
  google::protobuf::TextFormat::Printer printer;
  std::string text;
  SL_CHECK(printer.PrintToString(ResolveConfigDefaults(config), &text));
  return text;
}

}  // namespace sinklab
