// JPEG decoding and the resize of training and eval crops for the input pipeline, on libjpeg-turbo: only what a
// crop needs is decoded — DCT scaling to the smallest scale (1/8, 1/4, 1/2, 1) whose scaled box still covers the
// output on both sides, the box's columns (jpeg_crop_scanline), no rows above it (jpeg_skip_scanlines), nothing
// after its last row — and the box is resized to the output as PIL's `resize(BILINEAR)` does (its separable
// two-pass filter with antialiasing support when reducing, fixed-point coefficients, rounding to bytes after each
// pass), then optionally mirrored.
//
//   jpegDecode(bytes, opts) → { data: Buffer (H×W×3 RGB), w, h, denom } | null (CMYK/YCCK: left to the caller)
//   jpegDecodeAsync(bytes, opts) → the same, as a promise, decoded on libuv's pool
//   resizeRgb(pixels, w, h, opts) → { data, w, h, denom: 1 }: the same resize of decoded RGB pixels (other formats)
//
// Built without libjpeg's headers (FREEADV_JPEG=0, as without gloo's for dist.cc), the addon has resizeRgb only and
// sharp decodes JPEGs too.
//
// opts: box {left, top, width, height} in the stored image's pixels; outW, outH: the size the box is resized to
// (0: no resize, the box's pixels at the scale as they are); crop {cropLeft, cropTop, cropWidth, cropHeight}: the
// part of that result wanted (default all of it); flip; planar (resized results as 3×H×W); denom: force a scale
// 1/denom (default: chosen as above); maxPixels: larger images are refused before decoding.
//
// Unlike the rest of the addon, these functions touch no libtorch state: they may be called from any JavaScript
// thread (the loader's worker threads do). libjpeg's error_exit longjmps back to the function that called into
// libjpeg (only C frames lie between); its warnings are tolerated, except a premature end of the data (a truncated
// file), which is an error as it is for sharp with failOn 'error'.

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#if FREEADV_JPEG  // set by scripts/libtorch.cjs: libjpeg's headers found (Debian: libjpeg62-turbo-dev)
#include <jpeglib.h>
#include <jerror.h>
#endif

#include "common.h"

namespace freeadv {
namespace {

struct Options {
  double left = 0, top = 0, width = 0, height = 0;  // the box, in stored pixels (width 0: the whole image)
  int outW = 0, outH = 0;                         // resized to (0: not resized)
  int cropLeft = 0, cropTop = 0, cropWidth = 0, cropHeight = 0;  // of the resized box (width 0: all)
  bool flip = false;
  bool planar = false;  // resized results as 3×H×W planes instead of H×W×3
  int denom = 0;  // 0: chosen
  double maxPixels = 268402689;  // sharp's default limitInputPixels (0x3FFF²)
};

struct Decoded {
  std::vector<uint8_t> data;
  int w = 0, h = 0, denom = 1;
  bool unsupported = false;  // CMYK / YCCK: the caller decodes it another way
};

#if FREEADV_JPEG
struct ErrorMgr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
};

void onError(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorMgr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jump, 1);
}

void onMessage(j_common_ptr c, int level) {
  // level -1: a warning. Corrupt-data warnings are tolerated (libjpeg repairs what it can, as sharp's failOn
  // 'error' does); running out of data is not.
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) onError(c);
}

// The libjpeg calls, each in a function whose frame holds setjmp: a longjmp crosses only libjpeg's C frames.
struct Jpeg {
  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  bool created = false;
  ~Jpeg() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
  std::string message() const { return std::string("JPEG: ") + err.msg; }
};

bool readHeader(Jpeg& j, const uint8_t* data, size_t size) {
  j.cinfo.err = jpeg_std_error(&j.err.pub);
  j.err.pub.error_exit = onError;
  j.err.pub.emit_message = onMessage;
  if (setjmp(j.err.jump)) return false;
  jpeg_create_decompress(&j.cinfo);
  j.created = true;
  jpeg_mem_src(&j.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&j.cinfo, TRUE);
  return true;
}

bool computeScale(Jpeg& j, int denom) {
  if (setjmp(j.err.jump)) return false;
  j.cinfo.scale_num = 1;
  j.cinfo.scale_denom = static_cast<unsigned>(denom);
  j.cinfo.out_color_space = JCS_RGB;  // PIL's defaults otherwise: JDCT_ISLOW, fancy upsampling
  jpeg_calc_output_dimensions(&j.cinfo);
  return true;
}

// Rows [y0, y1) and columns [x0, x1) of the scaled image into `out` (rows of (x1 − x0) × 3 bytes). Columns and rows
// are widened by a margin before libjpeg aligns them to iMCUs, so that the edges of the decoded region, where
// libjpeg's upsampling sees no neighbour, lie outside the window cut back out of it.
bool decodeRegion(Jpeg& j, int x0, int x1, int y0, int y1, uint8_t* out, uint8_t* rowBuf) {
  if (setjmp(j.err.jump)) return false;
  jpeg_start_decompress(&j.cinfo);
  const int W = static_cast<int>(j.cinfo.output_width);
  const int margin = 2;
  JDIMENSION cx = static_cast<JDIMENSION>(x0 > margin ? x0 - margin : 0);
  JDIMENSION cw = static_cast<JDIMENSION>((x1 + margin < W ? x1 + margin : W)) - cx;
  if (cx != 0 || cw != static_cast<JDIMENSION>(W)) jpeg_crop_scanline(&j.cinfo, &cx, &cw);
  const int start = y0 > margin ? y0 - margin : 0;
  if (start > 0) jpeg_skip_scanlines(&j.cinfo, static_cast<JDIMENSION>(start));
  const size_t skipBytes = static_cast<size_t>(x0 - static_cast<int>(cx)) * 3, rowBytes = static_cast<size_t>(x1 - x0) * 3;
  for (int y = start; y < y1; y++) {
    JSAMPROW row = rowBuf;
    if (jpeg_read_scanlines(&j.cinfo, &row, 1) != 1) ERREXIT(&j.cinfo, JERR_INPUT_EMPTY);  // (a memory source never suspends)
    if (y >= y0) std::memcpy(out + static_cast<size_t>(y - y0) * rowBytes, rowBuf + skipBytes, rowBytes);
  }
  jpeg_abort_decompress(&j.cinfo);  // the rest of the file is not read
  return true;
}

#endif  // FREEADV_JPEG

// PIL's bilinear resampling coefficients (Resample.c: precompute_coeffs, normalize_coeffs_8bpc) for outSize pixels
// over [in0, in1) of inSize input pixels.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // xmin, count per output pixel
  std::vector<int32_t> k;
};
constexpr int kPrecisionBits = 32 - 8 - 2;

Coeffs coeffs(int inSize, double in0, double in1, int outSize) {
  Coeffs c;
  const double scale = (in1 - in0) / outSize, filterscale = scale < 1.0 ? 1.0 : scale, support = 1.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * static_cast<size_t>(outSize));
  c.k.assign(static_cast<size_t>(outSize) * c.ksize, 0);
  std::vector<double> pre(c.ksize);
  for (int xx = 0; xx < outSize; xx++) {
    const double center = in0 + (xx + 0.5) * scale, ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) {
      double t = std::fabs((x + xmin - center + 0.5) * ss);
      pre[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += pre[x];
    }
    for (int x = 0; x < xmax; x++) {
      const double w = ww != 0.0 ? pre[x] / ww : pre[x];
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << kPrecisionBits) : 0.5 + w * (1 << kPrecisionBits));
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

void checkOptions(const Options& o, int W, int H) {
  auto bad = [](const std::string& m) { throw std::runtime_error("jpegDecode: " + m); };
  if (!(o.left >= 0 && o.top >= 0 && o.width > 0 && o.height > 0 && o.left + o.width <= W && o.top + o.height <= H))
    bad("the box lies outside the image");
  const int ow = o.outW ? o.outW : 1, oh = o.outH ? o.outH : 1;
  if (o.outW < 0 || o.outH < 0 || (o.outW == 0) != (o.outH == 0)) bad("outW and outH must both be positive or both 0");
  if (o.cropWidth && (o.cropLeft < 0 || o.cropTop < 0 || o.cropLeft + o.cropWidth > ow || o.cropTop + o.cropHeight > oh || o.cropHeight <= 0))
    bad("the crop lies outside the resized box");
  if (!(o.denom == 0 || o.denom == 1 || o.denom == 2 || o.denom == 4 || o.denom == 8)) bad("denom must be 1, 2, 4 or 8");
}

// The resize's loops are written so that GCC vectorises them at -O3 (the addon builds at -O2): 10% less CPU per crop.
#if defined(__GNUC__) && !defined(__clang__)
#define FREEADV_VECTORISE __attribute__((optimize("O3")))
#else
#define FREEADV_VECTORISE
#endif

// One RGB row of w pixels mirrored left-right in place.
void mirror(uint8_t* row, int w) {
  for (int a = 0, b = w - 1; a < b; a++, b--)
    for (int c = 0; c < 3; c++) std::swap(row[3 * a + c], row[3 * b + c]);
}

// PIL's resize (Image.resize(BILINEAR, box)) of a winW × winH window to outW × outH over the box [bx0, bx1) ×
// [by0, by1) (window coordinates; the window's edges clamp the filter as a crop's edges do), of which only the
// crop's output pixels are computed; [rx0, rx1) × [ry0, ry1): the window's pixels they read.
struct Plan {
  Coeffs hc, vc;
  bool needH, needV;  // PIL skips a pass that would copy
  int cl, ct, cw, ch;
  int rx0, rx1, ry0, ry1;
};

Plan makePlan(const Options& o, int winW, int winH, double bx0, double by0, double bx1, double by1) {
  Plan p;
  p.cl = o.cropWidth ? o.cropLeft : 0;
  p.ct = o.cropWidth ? o.cropTop : 0;
  p.cw = o.cropWidth ? o.cropWidth : o.outW;
  p.ch = o.cropWidth ? o.cropHeight : o.outH;
  p.hc = coeffs(winW, bx0, bx1, o.outW);
  p.vc = coeffs(winH, by0, by1, o.outH);
  p.needH = o.outW != winW || bx0 != 0 || bx1 != winW;
  p.needV = o.outH != winH || by0 != 0 || by1 != winH;
  auto span = [](const Coeffs& c, int from, int n, bool need) {
    if (!need) return std::pair<int, int>(from, from + n);
    int lo = 1 << 30, hi = 0;
    for (int i = from; i < from + n; i++) {
      lo = std::min(lo, c.bounds[2 * i]);
      hi = std::max(hi, c.bounds[2 * i] + c.bounds[2 * i + 1]);
    }
    return std::pair<int, int>(lo, hi);
  };
  std::tie(p.rx0, p.rx1) = span(p.hc, p.cl, p.cw, p.needH);
  std::tie(p.ry0, p.ry1) = span(p.vc, p.ct, p.ch, p.needV);
  return p;
}

// The plan's two passes (horizontal first, each rounded to bytes, as PIL) over src, the window's pixels
// [rx0, rx1) × [ry0, ry1) as RGB rows `stride` bytes apart; the result mirrored when asked, interleaved (H×W×3)
// or planar (3×H×W).
FREEADV_VECTORISE void resample(const Plan& p, const uint8_t* src, size_t stride, bool flip, bool planar, Decoded& r) {
  const int rh = p.ry1 - p.ry0, cw = p.cw, ch = p.ch;
  std::vector<uint8_t> tmp;
  const uint8_t* hsrc = src;
  size_t hstride = stride;
  if (p.needH) {
    tmp.resize(static_cast<size_t>(rh) * cw * 3);
    for (int y = 0; y < rh; y++) {
      const uint8_t* in = src + static_cast<size_t>(y) * stride;
      uint8_t* out = tmp.data() + static_cast<size_t>(y) * cw * 3;
      for (int x = 0; x < cw; x++) {
        const int xmin = p.hc.bounds[2 * (p.cl + x)] - p.rx0, n = p.hc.bounds[2 * (p.cl + x) + 1];
        const int32_t* k = &p.hc.k[static_cast<size_t>(p.cl + x) * p.hc.ksize];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        const uint8_t* q = in + static_cast<size_t>(xmin) * 3;
        for (int i = 0; i < n; i++, q += 3) {
          s0 += q[0] * k[i];
          s1 += q[1] * k[i];
          s2 += q[2] * k[i];
        }
        out[3 * x] = clip8(s0);
        out[3 * x + 1] = clip8(s1);
        out[3 * x + 2] = clip8(s2);
      }
    }
    hsrc = tmp.data();
    hstride = static_cast<size_t>(cw) * 3;
  }
  r.w = cw;
  r.h = ch;
  r.data.resize(static_cast<size_t>(cw) * ch * 3);
  const size_t row = static_cast<size_t>(cw) * 3;
  std::vector<int32_t> acc(p.needV ? row : 0);
  std::vector<uint8_t> line(planar ? row : 0);
  const size_t plane = static_cast<size_t>(cw) * ch;
  for (int y = 0; y < ch; y++) {
    uint8_t* out = planar ? line.data() : r.data.data() + static_cast<size_t>(y) * row;
    if (p.needV) {
      // a row at a time (the same sums as PIL's per-pixel loop, in an order the compiler vectorises)
      const int ymin = p.vc.bounds[2 * (p.ct + y)] - p.ry0, n = p.vc.bounds[2 * (p.ct + y) + 1];
      const int32_t* k = &p.vc.k[static_cast<size_t>(p.ct + y) * p.vc.ksize];
      std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
      for (int i = 0; i < n; i++) {
        const uint8_t* q = hsrc + static_cast<size_t>(ymin + i) * hstride;
        const int32_t ki = k[i];
        int32_t* a = acc.data();
        for (size_t b = 0; b < row; b++) a[b] += q[b] * ki;
      }
      for (size_t b = 0; b < row; b++) out[b] = clip8(acc[b]);
    } else {
      std::memcpy(out, hsrc + static_cast<size_t>(y) * hstride, row);
    }
    if (flip) mirror(out, cw);
    if (planar)  // the row into the three planes (C×H×W: what toTensors hands libtorch, no permute there)
      for (int x = 0; x < cw; x++)
        for (int c = 0; c < 3; c++) r.data[c * plane + static_cast<size_t>(y) * cw + x] = out[3 * x + c];
  }
}

// RGB pixels (w × h, rows `stride` bytes apart) resized by PIL's rule: o's box in them, outW × outH, crop, flip.
Decoded resizePixels(const uint8_t* px, int w, int h, size_t stride, const Options& o) {
  if (o.outW <= 0) throw std::runtime_error("resizeRgb: outW and outH must be positive");
  checkOptions(o, w, h);
  const Plan plan = makePlan(o, w, h, o.left, o.top, o.left + o.width, o.top + o.height);
  Decoded r;
  resample(plan, px + static_cast<size_t>(plan.ry0) * stride + static_cast<size_t>(plan.rx0) * 3, stride, o.flip, o.planar, r);
  return r;
}

#if FREEADV_JPEG
// Decodes and resizes; throws std::runtime_error with libjpeg's message (or ours).
Decoded decode(const uint8_t* data, size_t size, Options o) {
  Decoded r;
  Jpeg j;
  if (!readHeader(j, data, size)) throw std::runtime_error(j.message());
  const int W = static_cast<int>(j.cinfo.image_width), H = static_cast<int>(j.cinfo.image_height);
  if (static_cast<double>(W) * H > o.maxPixels) throw std::runtime_error("Input image exceeds pixel limit");
  if (j.cinfo.jpeg_color_space == JCS_CMYK || j.cinfo.jpeg_color_space == JCS_YCCK) {
    r.unsupported = true;
    return r;
  }
  if (o.width == 0) {
    o.left = o.top = 0;
    o.width = W;
    o.height = H;
  }
  checkOptions(o, W, H);
  const bool resize = o.outW > 0;
  // the scale: the smallest whose scaled box is still at least the output on both sides
  int d = o.denom;
  if (!d) {
    d = 1;
    if (resize)
      for (int s : {8, 4, 2})
        if (o.width / s >= o.outW && o.height / s >= o.outH) {
          d = s;
          break;
        }
  }
  if (!computeScale(j, d)) throw std::runtime_error(j.message());
  r.denom = d;
  const int SW = static_cast<int>(j.cinfo.output_width), SH = static_cast<int>(j.cinfo.output_height);
  // the box at the scale: whole pixels [wx0, wx1) × [wy0, wy1) around its exact extent (exact at scale 1)
  const double bx0 = o.left / d, bx1 = (o.left + o.width) / d, by0 = o.top / d, by1 = (o.top + o.height) / d;
  const int wx0 = static_cast<int>(std::floor(bx0)), wy0 = static_cast<int>(std::floor(by0));
  const int wx1 = std::min(SW, static_cast<int>(std::ceil(bx1))), wy1 = std::min(SH, static_cast<int>(std::ceil(by1)));
  if (!resize) {
    r.w = wx1 - wx0;
    r.h = wy1 - wy0;
    r.data.resize(static_cast<size_t>(r.w) * r.h * 3);
    std::vector<uint8_t> rowBuf(static_cast<size_t>(SW) * 3);
    if (!decodeRegion(j, wx0, wx1, wy0, wy1, r.data.data(), rowBuf.data())) throw std::runtime_error(j.message());
    if (o.flip)
      for (int y = 0; y < r.h; y++) mirror(r.data.data() + static_cast<size_t>(y) * r.w * 3, r.w);
    return r;
  }
  const Plan plan = makePlan(o, wx1 - wx0, wy1 - wy0, bx0 - wx0, by0 - wy0, bx1 - wx0, by1 - wy0);
  std::vector<uint8_t> src(static_cast<size_t>(plan.rx1 - plan.rx0) * (plan.ry1 - plan.ry0) * 3), rowBuf(static_cast<size_t>(SW) * 3);
  if (!decodeRegion(j, wx0 + plan.rx0, wx0 + plan.rx1, wy0 + plan.ry0, wy0 + plan.ry1, src.data(), rowBuf.data())) throw std::runtime_error(j.message());
  resample(plan, src.data(), static_cast<size_t>(plan.rx1 - plan.rx0) * 3, o.flip, o.planar, r);
  return r;
}

#endif  // FREEADV_JPEG

Options parseOptions(Napi::Env env, const Napi::Value& v) {
  Options o;
  if (v.IsUndefined()) return o;
  if (!v.IsObject()) typeError(env, "jpegDecode: options must be an object");
  auto obj = v.As<Napi::Object>();
  auto num = [&](const char* name, double def) {
    Napi::Value x = obj.Get(name);
    if (x.IsUndefined()) return def;
    if (!x.IsNumber()) typeError(env, std::string("jpegDecode: ") + name + " must be a number");
    return x.As<Napi::Number>().DoubleValue();
  };
  auto integer = [&](const char* name) {
    double d = num(name, 0);
    if (d != std::floor(d) || std::fabs(d) > 1e9) typeError(env, std::string("jpegDecode: ") + name + " must be an integer");
    return static_cast<int>(d);
  };
  o.left = integer("left");
  o.top = integer("top");
  o.width = integer("width");
  o.height = integer("height");
  o.outW = integer("outW");
  o.outH = integer("outH");
  o.cropLeft = integer("cropLeft");
  o.cropTop = integer("cropTop");
  o.cropWidth = integer("cropWidth");
  o.cropHeight = integer("cropHeight");
  o.denom = integer("denom");
  o.maxPixels = num("maxPixels", o.maxPixels);
  Napi::Value f = obj.Get("flip");
  o.flip = f.IsBoolean() && f.As<Napi::Boolean>().Value();
  Napi::Value pl = obj.Get("planar");
  o.planar = pl.IsBoolean() && pl.As<Napi::Boolean>().Value();
  return o;
}

Napi::Value result(Napi::Env env, Decoded& d) {
  if (d.unsupported) return env.Null();
  auto* data = new std::vector<uint8_t>(std::move(d.data));
  auto buf = Napi::Buffer<uint8_t>::New(env, data->data(), data->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, data);
  auto o = Napi::Object::New(env);
  o.Set("data", buf);
  o.Set("w", d.w);
  o.Set("h", d.h);
  o.Set("denom", d.denom);
  return o;
}

#if FREEADV_JPEG
Napi::Uint8Array bytesOf(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) typeError(env, "jpegDecode: expected the file's bytes as a Uint8Array");
  return v.As<Napi::Uint8Array>();
}

EXPORT(jpegDecode) {
  Napi::Env env = info.Env();
  auto bytes = bytesOf(env, info[0]);
  Options o = parseOptions(env, info[1]);
  Decoded d;
  try {
    d = decode(bytes.Data(), bytes.ByteLength(), o);
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
  return result(env, d);
}

#endif  // FREEADV_JPEG

EXPORT(resizeRgb) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) typeError(env, "resizeRgb: expected RGB pixels as a Uint8Array");
  auto px = info[0].As<Napi::Uint8Array>();
  const int64_t w = toInt(env, info[1], "resizeRgb: width"), h = toInt(env, info[2], "resizeRgb: height");
  if (w < 1 || h < 1 || static_cast<double>(w) * h * 3 > static_cast<double>(px.ByteLength())) typeError(env, "resizeRgb: the pixels are fewer than width × height × 3");
  Options o = parseOptions(env, info[3]);
  if (o.width == 0) {
    o.width = static_cast<double>(w);
    o.height = static_cast<double>(h);
  }
  Decoded d;
  try {
    d = resizePixels(px.Data(), static_cast<int>(w), static_cast<int>(h), static_cast<size_t>(w) * 3, o);
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
  return result(env, d);
}

#if FREEADV_JPEG
class DecodeWork : public Napi::AsyncWorker {
 public:
  DecodeWork(Napi::Env env, Napi::Uint8Array bytes, Options o)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), o_(o), data_(bytes.Data()), size_(bytes.ByteLength()) {
    bytes_ = Napi::Persistent(bytes);  // kept alive while the pool reads it
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      d_ = decode(data_, size_, o_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(result(Env(), d_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> bytes_;
  Options o_;
  const uint8_t* data_;
  size_t size_;
  Decoded d_;
};

EXPORT(jpegDecodeAsync) {
  Napi::Env env = info.Env();
  auto bytes = bytesOf(env, info[0]);
  auto* w = new DecodeWork(env, bytes, parseOptions(env, info[1]));
  auto p = w->promise();
  w->Queue();
  return p;
}

#endif  // FREEADV_JPEG

}  // namespace

void registerJpeg(Napi::Env env, Napi::Object exports) {
  REG(resizeRgb);
#if FREEADV_JPEG
  REG(jpegDecode); REG(jpegDecodeAsync);
#endif
}

}  // namespace freeadv
