// FlatView: a list of fp32 tensors seen as one flat vector, the tensors concatenated in
// list order (tensor i occupies [offset(i), offset(i) + numel_i)). Data-parallel training
// moves ranges of this vector through the collectives of core/comm.h (gradient buckets,
// ZeRO-1 shards) without keeping a flat copy of the tensors: CopyOut packs a range into a
// buffer, CopyIn unpacks one. Positions at or past size() are padding: CopyOut writes zeros
// there and CopyIn skips them, which is core/comm.h's padding rule for sharded collectives.
//
// Devices: the tensors all live on one device, and the buffers CopyOut/CopyIn take on the
// `buffer_device` given at construction (CPU by default). When either is a CUDA device
// (ZeRO-1 on GPUs, and checkpoints gathering GPU state to the host) the copies are
// cudaMemcpyAsync / cudaMemsetAsync on stream() (set_stream; the legacy default stream
// unless set), so they are ordered with the collectives on that stream; the caller orders
// that stream with the work that produced the tensors. Host-only views never touch CUDA.
#ifndef SINKLAB_OPTIM_FLAT_VIEW_H_
#define SINKLAB_OPTIM_FLAT_VIEW_H_

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sinklab {

class FlatView {
 public:
  FlatView() = default;
  // Every tensor fp32 and non-empty, all on one device; buffers on `buffer_device`.
  explicit FlatView(std::vector<Tensor> tensors, Device buffer_device = Device::kCpu);

  // The CUDA stream (a cudaStream_t) of device copies; null: the legacy default stream.
  void set_stream(void* stream) { stream_ = stream; }
  void* stream() const { return stream_; }

  int64_t size() const { return offsets_.back(); }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  int64_t offset(size_t i) const { return offsets_[i]; }

  // out[0, count) <- flat[begin, begin + count) (zeros past size()).
  void CopyOut(int64_t begin, int64_t count, float* out) const;
  // flat[begin, begin + count) <- in[0, count) (positions past size() are not written).
  void CopyIn(int64_t begin, int64_t count, const float* in) const;

  // The parts of flat [begin, end) inside tensors: fn(tensor index, first element inside
  // that tensor, flat position of that element, element count), in flat order.
  template <typename Fn>
  void ForEachPiece(int64_t begin, int64_t end, const Fn& fn) const {
    if (end > size()) end = size();
    for (size_t i = FirstTensorAt(begin); begin < end && i < tensors_.size(); ++i) {
      const int64_t tensor_end = offsets_[i + 1];
      if (tensor_end <= begin) continue;
      const int64_t piece_end = end < tensor_end ? end : tensor_end;
      fn(i, begin - offsets_[i], begin, piece_end - begin);
      begin = piece_end;
    }
  }

 private:
  // The index of the tensor holding flat position `position` (tensors_.size() past the end).
  size_t FirstTensorAt(int64_t position) const;

  // dst <- src, `count` floats, host or device as this view's devices say.
  void Copy(float* dst, const float* src, int64_t count) const;

  std::vector<Tensor> tensors_;
  std::vector<int64_t> offsets_ = {0};  // [tensors + 1], prefix sums of numel
  bool on_device_ = false;              // the tensors or the buffers are on a CUDA device
  bool buffers_on_device_ = false;
  void* stream_ = nullptr;
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_FLAT_VIEW_H_
