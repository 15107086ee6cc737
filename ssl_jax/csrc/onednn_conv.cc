// oneDNN 2-D convolutions (forward, input gradient, kernel gradient) as XLA
// FFI custom calls for XLA:CPU. Hand-written glue because neither jaxlib nor
// any package exposes oneDNN convolutions to JAX; XLA:CPU's own (Eigen)
// kernels run ResNet-style 3x3 layers at ~60 % of oneDNN's speed.
//
// Activations are NHWC and kernels HWIO, float32 or bfloat16 (all three
// buffers of a call alike), as in ssl_jax's encoders. Built by
// ssl_jax/models/onednn.py; see that file for the Python side.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

struct Geometry {
  int64_t n, h, w, c, o, kh, kw, oh, ow, sh, sw, pt, pb, pl, pr;
  memory::data_type dt;

  std::string Key(char kind) const {
    std::string key(1, kind);
    key += dt == memory::data_type::bf16 ? 'b' : 'f';
    for (int64_t v : {n, h, w, c, o, kh, kw, oh, ow, sh, sw, pt, pb, pl, pr}) {
      key += ',' + std::to_string(v);
    }
    return key;
  }
  memory::desc Src() const { return memory::desc({n, c, h, w}, dt, Tag::nhwc); }
  memory::desc Dst() const {
    return memory::desc({n, o, oh, ow}, dt, Tag::nhwc);
  }
  memory::desc Weights(Tag tag) const {
    return memory::desc({o, c, kh, kw}, dt, tag);
  }
};

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// One cached primitive, with the reorder between the user's HWIO kernel and
// the blocked layout oneDNN picked for it (none when they are equal).
struct Entry {
  dnnl::primitive conv;
  memory::desc weights_md;  // oneDNN's kernel layout.
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;
};

// Primitive creation costs milliseconds, so each geometry is built once. The
// mutex also serialises execution: the OpenMP pool is shared, and two convs
// at once on a 2-4 core machine only contend.
std::mutex& Mutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

std::unordered_map<std::string, std::unique_ptr<Entry>>& Cache() {
  static auto* cache =
      new std::unordered_map<std::string, std::unique_ptr<Entry>>;
  return *cache;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, g.Src(), g.Weights(Tag::any),
      g.Dst(), {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr});
}

// Records oneDNN's kernel layout ``md`` and, where it differs from HWIO, the
// reorder into it (``from_hwio``) or out of it (the kernel gradient).
void SetWeights(Entry* entry, const memory::desc& md, const memory::desc& hwio,
                bool from_hwio) {
  entry->weights_md = md;
  entry->reorder_weights = md != hwio;
  if (!entry->reorder_weights) return;
  const memory::desc& src = from_hwio ? hwio : md;
  const memory::desc& dst = from_hwio ? md : hwio;
  entry->weights_reorder = dnnl::reorder(
      dnnl::reorder::primitive_desc(Engine(), src, Engine(), dst));
}

Entry* Get(char kind, const Geometry& g) {
  auto& slot = Cache()[g.Key(kind)];
  if (slot) return slot.get();
  auto entry = std::make_unique<Entry>();
  memory::desc hwio = g.Weights(Tag::hwio);
  auto fwd = ForwardDesc(g);
  if (kind == 'f') {
    entry->conv = dnnl::convolution_forward(fwd);
    SetWeights(entry.get(), fwd.weights_desc(), hwio, true);
  } else if (kind == 'd') {
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(),
        g.Weights(Tag::any), g.Dst(), {g.sh, g.sw}, {g.pt, g.pl},
        {g.pb, g.pr}, fwd);
    entry->conv = dnnl::convolution_backward_data(pd);
    SetWeights(entry.get(), pd.weights_desc(), hwio, true);
  } else {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.Src(),
        g.Weights(Tag::any), g.Dst(), {g.sh, g.sw}, {g.pt, g.pl},
        {g.pb, g.pr}, fwd);
    entry->conv = dnnl::convolution_backward_weights(pd);
    SetWeights(entry.get(), pd.diff_weights_desc(), hwio, false);
  }
  slot = std::move(entry);
  return slot.get();
}

Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> k,
                      ffi::Span<const int64_t> y, int64_t sh, int64_t sw,
                      int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                      memory::data_type dt) {
  return Geometry{x[0], x[1], x[2], x[3], k[3], k[0], k[1], y[1], y[2],
                  sh,   sw,   pt,   pb,   pl,   pr,   dt};
}

// The oneDNN type of three buffers of one element type, f32 or bf16.
bool DataType(ffi::DataType a, ffi::DataType b, ffi::DataType c,
              memory::data_type* dt) {
  if (a != b || a != c) return false;
  if (a == ffi::DataType::F32) {
    *dt = memory::data_type::f32;
  } else if (a == ffi::DataType::BF16) {
    *dt = memory::data_type::bf16;
  } else {
    return false;
  }
  return true;
}

ffi::Error Run(char kind, const Geometry& g, void* src, void* weights,
               void* dst) {
  try {
    std::lock_guard<std::mutex> lock(Mutex());
    Entry* e = Get(kind, g);
    dnnl::stream stream(Engine());
    memory src_mem(g.Src(), Engine(), src);
    memory dst_mem(g.Dst(), Engine(), dst);
    memory user_w(g.Weights(Tag::hwio), Engine(), weights);
    memory w = e->reorder_weights ? memory(e->weights_md, Engine()) : user_w;
    if (e->reorder_weights && kind != 'w') {
      e->weights_reorder.execute(stream, user_w, w);
    }
    if (kind == 'f') {
      e->conv.execute(stream, {{DNNL_ARG_SRC, src_mem},
                               {DNNL_ARG_WEIGHTS, w},
                               {DNNL_ARG_DST, dst_mem}});
    } else if (kind == 'd') {
      e->conv.execute(stream, {{DNNL_ARG_DIFF_SRC, src_mem},
                               {DNNL_ARG_WEIGHTS, w},
                               {DNNL_ARG_DIFF_DST, dst_mem}});
    } else {
      e->conv.execute(stream, {{DNNL_ARG_SRC, src_mem},
                               {DNNL_ARG_DIFF_WEIGHTS, w},
                               {DNNL_ARG_DIFF_DST, dst_mem}});
      if (e->reorder_weights) e->weights_reorder.execute(stream, w, user_w);
    }
    stream.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("oneDNN convolution failed: ") + err.what());
  }
  return ffi::Error::Success();
}

// ``a`` and ``b`` are the two inputs and ``out`` the result; which of src,
// weights and dst (or their gradients) each one is depends on ``kind``.
ffi::Error Call(char kind, ffi::AnyBuffer a, ffi::AnyBuffer b,
                ffi::Result<ffi::AnyBuffer> out, int64_t sh, int64_t sw,
                int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  memory::data_type dt;
  if (!DataType(a.element_type(), b.element_type(), out->element_type(),
                &dt)) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "oneDNN convolution: buffers must all be f32 or bf16");
  }
  if (kind == 'f') {  // a: x, b: kernel, out: y.
    Geometry g = MakeGeometry(a.dimensions(), b.dimensions(),
                              out->dimensions(), sh, sw, pt, pb, pl, pr, dt);
    return Run(kind, g, a.untyped_data(), b.untyped_data(),
               out->untyped_data());
  }
  if (kind == 'd') {  // a: dy, b: kernel, out: dx.
    Geometry g = MakeGeometry(out->dimensions(), b.dimensions(),
                              a.dimensions(), sh, sw, pt, pb, pl, pr, dt);
    return Run(kind, g, out->untyped_data(), b.untyped_data(),
               a.untyped_data());
  }
  // a: x, b: dy, out: dkernel.
  Geometry g = MakeGeometry(a.dimensions(), out->dimensions(), b.dimensions(),
                            sh, sw, pt, pb, pl, pr, dt);
  return Run(kind, g, a.untyped_data(), out->untyped_data(),
             b.untyped_data());
}

template <char kind>
ffi::Error Handler(ffi::AnyBuffer a, ffi::AnyBuffer b,
                   ffi::Result<ffi::AnyBuffer> out, int64_t sh, int64_t sw,
                   int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Call(kind, a, b, out, sh, sw, pt, pb, pl, pr);
}

}  // namespace

// All three take two buffers, return one, and carry the strides and pads.
#define SSL_JAX_CONV_BINDING                                           \
  ffi::Ffi::Bind()                                                     \
      .Arg<ffi::AnyBuffer>()                                           \
      .Arg<ffi::AnyBuffer>()                                           \
      .Ret<ffi::AnyBuffer>()                                           \
      .Attr<int64_t>("sh")                                             \
      .Attr<int64_t>("sw")                                             \
      .Attr<int64_t>("pt")                                             \
      .Attr<int64_t>("pb")                                             \
      .Attr<int64_t>("pl")                                             \
      .Attr<int64_t>("pr")

XLA_FFI_DEFINE_HANDLER_SYMBOL(SslJaxOnednnConvForward, Handler<'f'>,
                              SSL_JAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SslJaxOnednnConvInputGrad, Handler<'d'>,
                              SSL_JAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SslJaxOnednnConvKernelGrad, Handler<'w'>,
                              SSL_JAX_CONV_BINDING);

// 1 where this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), so
// that oneDNN's bf16 convolutions beat its f32 ones; elsewhere they are
// emulated and the encoders keep XLA's.
extern "C" int SslJaxOnednnNativeBf16() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_fp16:
    case dnnl::cpu_isa::avx512_core_amx:
    case dnnl::cpu_isa::avx512_core_amx_fp16:
#if DNNL_VERSION_MAJOR * 100 + DNNL_VERSION_MINOR >= 311  // Seen in 3.11/3.13.
    case dnnl::cpu_isa::avx10_2_512:
    case dnnl::cpu_isa::avx10_2_512_amx_2:
#endif
      return 1;
    default:
      return 0;
  }
}

// 1 where oneDNN can make its CPU engine. The SYCL builds (the `onednn`
// wheels) need a SYCL CPU device for it, which a missing OpenCL CPU runtime
// takes away; then every convolution would fail.
extern "C" int SslJaxOnednnEngineOk() {
  try {
    Engine();
    return 1;
  } catch (const dnnl::error&) {
    return 0;
  }
}
