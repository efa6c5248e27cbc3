// SPDX-License-Identifier: MIT OR Apache-2.0
//
// A CPU STAND-IN of NVIDIA's libnvbufsurface.so / libnvbufsurftransform.so, for tests only.
// It is NOT NVIDIA's code: it implements the few functions iguardverify calls, with the
// DeepStream 8.0+ layouts of NVMM-FACTS.md (NvBufSurface 72 bytes, NvBufSurfaceParams 416,
// CreateParams 64), on plain host memory. Built twice by the tests (tests/nvmm_standin/mod.rs):
// -DSTANDIN_SURFACE gives libnvbufsurface.so, -DSTANDIN_TRANSFORM libnvbufsurftransform.so
// (linked against the first, as NVIDIA's is).
//
// What it enforces, as NVIDIA's library does or as its documentation requires:
//  - "device" memory (CUDA_DEVICE, and DEFAULT, which is CUDA_DEVICE on a dGPU) cannot be
//    mapped; CUDA_PINNED, CUDA_UNIFIED and SYSTEM can;
//  - a source with more filled entries than the destination's batch is refused (NVIDIA's
//    crashes);
//  - struct sizes: create params must have their 8.0+ reserved tail zero; each entry of a
//    transform source's surfaceList must be an entry of a surface this library made (an entry
//    boundary at 416 bytes) or a byte-for-byte copy of one (as nvinfer's batched conversion
//    builds: its own array, one copy of a frame's entry per object), so a caller using the
//    wrong stride is refused;
//  - the batched form: entry i of the source is cut at src_rect[i] into entry i of the
//    destination at dst_rect[i], for every i < the source's numFilled, in one call;
//  - session parameters must have been set on the calling thread;
//  - pitch-linear sources in NV12, NV12_ER, RGBA, BGRA, RGBx, BGRx; the destination must be
//    pitch-linear RGBA; crops must fit the source.
// Rows are padded (pitch = width * bpp rounded up to 64, plus 64), so pitch != width * bpp.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

typedef struct {
    uint32_t num_planes;
    uint32_t width[4];
    uint32_t height[4];
    uint32_t pitch[4];
    uint32_t offset[4];
    uint32_t psize[4];
    uint32_t bytesPerPix[4];
    void *_reserved[4 * 4];
} NvBufSurfacePlaneParams;

typedef struct {
    void *addr[4];
    void *eglImage;
    void *_reserved[4];
} NvBufSurfaceMappedAddr;

typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t pitch;
    uint32_t colorFormat;
    uint32_t layout;
    uint64_t bufferDesc;
    uint32_t dataSize;
    void *dataPtr;
    NvBufSurfacePlaneParams planeParams;
    NvBufSurfaceMappedAddr mappedAddr;
    void *paramex;
    void *_reserved[7];
} NvBufSurfaceParams;

typedef struct {
    uint32_t gpuId;
    uint32_t batchSize;
    uint32_t numFilled;
    bool isContiguous;
    uint32_t memType;
    NvBufSurfaceParams *surfaceList;
    bool isImportedBuf;
    void *_reserved[4];
} NvBufSurface;

typedef struct {
    uint32_t gpuId;
    uint32_t width;
    uint32_t height;
    uint32_t size;
    bool isContiguous;
    uint32_t colorFormat;
    uint32_t layout;
    uint32_t memType;
    void *_reserved[4];
} NvBufSurfaceCreateParams;

typedef struct {
    uint32_t top, left, width, height;
    void *_reserved[4];
} NvBufSurfTransformRect;

typedef struct {
    uint32_t transform_flag;
    uint32_t transform_flip;
    uint32_t transform_filter;
    NvBufSurfTransformRect *src_rect;
    NvBufSurfTransformRect *dst_rect;
    void *_reserved[4];
} NvBufSurfTransformParams;

typedef struct {
    uint32_t compute_mode;
    int32_t gpu_id;
    void *cuda_stream;
    void *_reserved[4];
} NvBufSurfTransformConfigParams;

// The sizes of NVMM-FACTS.md (8.0+); the build fails if the structs above disagree.
_Static_assert(sizeof(NvBufSurfacePlaneParams) == 232, "plane params");
_Static_assert(offsetof(NvBufSurfaceParams, dataPtr) == 40, "dataPtr");
_Static_assert(offsetof(NvBufSurfaceParams, planeParams) == 48, "planeParams");
_Static_assert(offsetof(NvBufSurfaceParams, mappedAddr) == 280, "mappedAddr");
_Static_assert(sizeof(NvBufSurfaceParams) == 416, "NvBufSurfaceParams");
_Static_assert(offsetof(NvBufSurface, surfaceList) == 24, "surfaceList");
_Static_assert(offsetof(NvBufSurface, isImportedBuf) == 32, "isImportedBuf");
_Static_assert(sizeof(NvBufSurface) == 72, "NvBufSurface");
_Static_assert(offsetof(NvBufSurfaceCreateParams, memType) == 28, "memType");
_Static_assert(sizeof(NvBufSurfaceCreateParams) == 64, "create params");
_Static_assert(sizeof(NvBufSurfTransformRect) == 48, "rect");
_Static_assert(sizeof(NvBufSurfTransformParams) == 64, "transform params");
_Static_assert(sizeof(NvBufSurfTransformConfigParams) == 48, "config params");

enum { MEM_DEFAULT = 0, MEM_CUDA_PINNED, MEM_CUDA_DEVICE, MEM_CUDA_UNIFIED, MEM_SURFACE_ARRAY,
       MEM_HANDLE, MEM_SYSTEM };
enum { NV12 = 6, NV12_ER = 7, RGBA = 19, BGRA = 20, RGBX = 23, BGRX = 24 };

#define LOG(...) fprintf(stderr, "nvbufsurface stand-in: " __VA_ARGS__)

#ifdef STANDIN_SURFACE

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
typedef struct Node { NvBufSurface *surf; struct Node *next; } Node;
static Node *live;
static int maps_held;

static uint32_t pad_pitch(uint32_t bytes) { return ((bytes + 63) / 64) * 64 + 64; }

int NvBufSurfaceCreate(NvBufSurface **out, uint32_t batchSize, NvBufSurfaceCreateParams *p) {
    if (!out || !p || batchSize == 0) return -1;
    for (int i = 0; i < 4; i++) {
        if (p->_reserved[i]) {
            LOG("NvBufSurfaceCreateParams: reserved bytes 32..64 are not zero (a 7.x-sized "
                "struct passed to an 8.0+ library?)\n");
            return -1;
        }
    }
    if (p->layout != 0 && p->layout != 1) return -1;
    uint32_t f = p->colorFormat, w = p->width, h = p->height;
    if (w == 0 || h == 0) return -1;
    NvBufSurface *s = calloc(1, sizeof *s);
    s->gpuId = p->gpuId;
    s->batchSize = batchSize;
    s->numFilled = 0;
    s->memType = p->memType;
    s->surfaceList = calloc(batchSize, sizeof(NvBufSurfaceParams));
    for (uint32_t i = 0; i < batchSize; i++) {
        NvBufSurfaceParams *e = &s->surfaceList[i];
        e->width = w;
        e->height = h;
        e->colorFormat = f;
        e->layout = p->layout;
        NvBufSurfacePlaneParams *pp = &e->planeParams;
        if (f == NV12 || f == NV12_ER) {
            pp->num_planes = 2;
            pp->width[0] = w; pp->height[0] = h; pp->bytesPerPix[0] = 1;
            pp->width[1] = w / 2; pp->height[1] = h / 2; pp->bytesPerPix[1] = 2;
            pp->pitch[0] = pad_pitch(w);
            pp->pitch[1] = pad_pitch(w);
            pp->psize[0] = pp->pitch[0] * h;
            pp->psize[1] = pp->pitch[1] * ((h + 1) / 2);
            pp->offset[1] = pp->psize[0];
        } else if (f == RGBA || f == BGRA || f == RGBX || f == BGRX) {
            pp->num_planes = 1;
            pp->width[0] = w; pp->height[0] = h; pp->bytesPerPix[0] = 4;
            pp->pitch[0] = pad_pitch(w * 4);
            pp->psize[0] = pp->pitch[0] * h;
        } else {
            // Other formats: one byte-per-pixel plane, enough for tests to make them.
            pp->num_planes = 1;
            pp->width[0] = w; pp->height[0] = h; pp->bytesPerPix[0] = 1;
            pp->pitch[0] = pad_pitch(w);
            pp->psize[0] = pp->pitch[0] * h;
        }
        e->pitch = pp->pitch[0];
        e->dataSize = pp->psize[0] + pp->psize[1];
        e->dataPtr = calloc(1, e->dataSize);
    }
    pthread_mutex_lock(&lock);
    Node *n = malloc(sizeof *n);
    n->surf = s;
    n->next = live;
    live = n;
    pthread_mutex_unlock(&lock);
    *out = s;
    return 0;
}

static bool registered(NvBufSurface *s) {
    for (Node *n = live; n; n = n->next)
        if (n->surf == s) return true;
    return false;
}

int NvBufSurfaceDestroy(NvBufSurface *s) {
    pthread_mutex_lock(&lock);
    Node **pp = &live;
    while (*pp && (*pp)->surf != s) pp = &(*pp)->next;
    if (!*pp) {
        pthread_mutex_unlock(&lock);
        LOG("NvBufSurfaceDestroy of a surface it did not make\n");
        return -1;
    }
    Node *n = *pp;
    *pp = n->next;
    free(n);
    for (uint32_t i = 0; i < s->batchSize; i++) {
        for (int p = 0; p < 4; p++)
            if (s->surfaceList[i].mappedAddr.addr[p]) maps_held--;
        free(s->surfaceList[i].dataPtr);
    }
    pthread_mutex_unlock(&lock);
    free(s->surfaceList);
    free(s);
    return 0;
}

static bool mappable(uint32_t mem) {
    return mem == MEM_CUDA_PINNED || mem == MEM_CUDA_UNIFIED || mem == MEM_SYSTEM;
}

int NvBufSurfaceMap(NvBufSurface *s, int index, int plane, int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    bool ok = registered(s);
    pthread_mutex_unlock(&lock);
    if (!ok) { LOG("NvBufSurfaceMap of a surface it did not make\n"); return -1; }
    if (!mappable(s->memType)) {
        LOG("memory type %u is device memory on a dGPU: it cannot be mapped\n", s->memType);
        return -1;
    }
    for (uint32_t i = 0; i < s->batchSize; i++) {
        if (index != -1 && (uint32_t)index != i) continue;
        NvBufSurfaceParams *e = &s->surfaceList[i];
        for (uint32_t p = 0; p < e->planeParams.num_planes; p++) {
            if (plane != -1 && (uint32_t)plane != p) continue;
            if (!e->mappedAddr.addr[p]) {
                __atomic_add_fetch(&maps_held, 1, __ATOMIC_SEQ_CST);
                e->mappedAddr.addr[p] = (uint8_t *)e->dataPtr + e->planeParams.offset[p];
            }
        }
    }
    return 0;
}

int NvBufSurfaceUnMap(NvBufSurface *s, int index, int plane) {
    for (uint32_t i = 0; i < s->batchSize; i++) {
        if (index != -1 && (uint32_t)index != i) continue;
        NvBufSurfaceParams *e = &s->surfaceList[i];
        for (int p = 0; p < 4; p++) {
            if (plane != -1 && plane != p) continue;
            if (e->mappedAddr.addr[p]) {
                __atomic_sub_fetch(&maps_held, 1, __ATOMIC_SEQ_CST);
                e->mappedAddr.addr[p] = NULL;
            }
        }
    }
    return 0;
}

int NvBufSurfaceSyncForCpu(NvBufSurface *s, int index, int plane) {
    (void)index; (void)plane;
    return (s->memType == MEM_SURFACE_ARRAY || s->memType == MEM_HANDLE) ? 0 : -1;
}

// Stand-in only, for tests: is `list` the entry list (or an entry of it) of a live surface,
// on an entry boundary? Returns the surface, or NULL.
NvBufSurface *standin_owner_of_entry(const NvBufSurfaceParams *entry) {
    NvBufSurface *found = NULL;
    pthread_mutex_lock(&lock);
    for (Node *n = live; n && !found; n = n->next) {
        const uint8_t *base = (const uint8_t *)n->surf->surfaceList;
        const uint8_t *p = (const uint8_t *)entry;
        size_t span = n->surf->batchSize * sizeof(NvBufSurfaceParams);
        if (p >= base && p < base + span && (size_t)(p - base) % sizeof(NvBufSurfaceParams) == 0)
            found = n->surf;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

// Stand-in only: is `e` an entry of a live surface (on an entry boundary), or a copy of one
// (same dataPtr, the same bytes up to mappedAddr, which a copy made while mapped may lack)?
bool standin_entry_is_known(const NvBufSurfaceParams *e) {
    if (standin_owner_of_entry(e)) return true;
    bool found = false;
    pthread_mutex_lock(&lock);
    for (Node *n = live; n && !found; n = n->next) {
        for (uint32_t i = 0; i < n->surf->batchSize && !found; i++) {
            const NvBufSurfaceParams *o = &n->surf->surfaceList[i];
            found = o->dataPtr == e->dataPtr
                && memcmp(o, e, offsetof(NvBufSurfaceParams, mappedAddr)) == 0;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

// Stand-in only: how many surfaces are alive and planes mapped (tests check nothing is held).
int standin_live_surfaces(void) {
    int c = 0;
    pthread_mutex_lock(&lock);
    for (Node *n = live; n; n = n->next) c++;
    pthread_mutex_unlock(&lock);
    return c;
}

int standin_maps_held(void) { return __atomic_load_n(&maps_held, __ATOMIC_SEQ_CST); }

#endif // STANDIN_SURFACE

#ifdef STANDIN_TRANSFORM

extern NvBufSurface *standin_owner_of_entry(const NvBufSurfaceParams *entry);
extern bool standin_entry_is_known(const NvBufSurfaceParams *entry);

static __thread bool session_set;
// Entries (tiles) cut, and calls made.
static int transforms;
static int transform_calls;
// Failures to inject (tests of the callers' fallbacks): the next N calls of more than one entry,
// and the next N calls of one entry, fail with Execution_Error (-2).
static int fail_batched;
static int fail_single;

int NvBufSurfTransformSetSessionParams(NvBufSurfTransformConfigParams *c) {
    if (!c) return -3;
    for (int i = 0; i < 4; i++)
        if (c->_reserved[i]) { LOG("config params: reserved bytes not zero\n"); return -3; }
    session_set = true;
    return 0;
}

static uint64_t transform_ns;

// Stand-in only: the number of entries (tiles) transformed (tests check no tile bypassed it).
int standin_transforms(void) { return __atomic_load_n(&transforms, __ATOMIC_SEQ_CST); }

// Stand-in only: the number of successful NvBufSurfTransform calls (one per tile, or one per
// batch).
int standin_transform_calls(void) { return __atomic_load_n(&transform_calls, __ATOMIC_SEQ_CST); }

// Stand-in only: make the next `batched` calls of more than one entry and the next `single`
// calls of one entry fail with Execution_Error.
void standin_fail_next(int batched, int single) {
    __atomic_store_n(&fail_batched, batched, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_single, single, __ATOMIC_SEQ_CST);
}

// Stand-in only: thread CPU time spent in NvBufSurfTransform, summed, its checks included (the
// benchmark takes it out of the streaming thread's figure: on a GPU that work is not the
// CPU's, and the checks are the stand-in's, not what NVIDIA's library does).
uint64_t standin_transform_ns(void) { return __atomic_load_n(&transform_ns, __ATOMIC_SEQ_CST); }

static uint64_t thread_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void rgb_at(const NvBufSurfaceParams *e, int x, int y, float out[3]) {
    const uint8_t *base = e->dataPtr;
    const NvBufSurfacePlaneParams *pp = &e->planeParams;
    if (e->colorFormat == NV12 || e->colorFormat == NV12_ER) {
        float Y = base[y * pp->pitch[0] + x];
        const uint8_t *uv = base + pp->offset[1] + (y / 2) * pp->pitch[1] + (x / 2) * 2;
        float U = uv[0] - 128.0f, V = uv[1] - 128.0f;
        float r, g, b;
        if (e->colorFormat == NV12) { // BT.601, limited range
            float c = 1.164f * (Y - 16.0f);
            r = c + 1.596f * V;
            g = c - 0.392f * U - 0.813f * V;
            b = c + 2.017f * U;
        } else { // BT.601, full range
            r = Y + 1.402f * V;
            g = Y - 0.344f * U - 0.714f * V;
            b = Y + 1.772f * U;
        }
        out[0] = r; out[1] = g; out[2] = b;
    } else {
        const uint8_t *p = base + y * pp->pitch[0] + x * 4;
        bool bgr = e->colorFormat == BGRA || e->colorFormat == BGRX;
        out[0] = p[bgr ? 2 : 0]; out[1] = p[1]; out[2] = p[bgr ? 0 : 2];
    }
}

static uint8_t clamp8(float v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)(v + 0.5f); }

// Where entry i is cut from and to.
typedef struct { uint32_t sx, sy, sw, sh, dx, dy, dw, dh; } Cut;

// Checks entry i of a transform (formats, layouts, rects); fills `c`. 0 or the error code.
static int check_entry(const NvBufSurfaceParams *se, const NvBufSurfaceParams *de,
                       const NvBufSurfTransformParams *t, uint32_t i, Cut *c) {
    if (se->layout != 0) { LOG("block-linear source: unsupported here\n"); return -1; }
    uint32_t f = se->colorFormat;
    if (!(f == NV12 || f == NV12_ER || f == RGBA || f == BGRA || f == RGBX || f == BGRX)) {
        LOG("source colour format %u unsupported\n", f);
        return -1;
    }
    if (de->colorFormat != RGBA || de->layout != 0) return -1;
    *c = (Cut){0, 0, se->width, se->height, 0, 0, de->width, de->height};
    if (t->transform_flag & 1) {
        if (!t->src_rect) return -3;
        NvBufSurfTransformRect r = t->src_rect[i];
        for (int k = 0; k < 4; k++) if (r._reserved[k]) return -3;
        c->sx = r.left; c->sy = r.top; c->sw = r.width; c->sh = r.height;
    }
    if (t->transform_flag & 2) {
        if (!t->dst_rect) return -3;
        NvBufSurfTransformRect r = t->dst_rect[i];
        for (int k = 0; k < 4; k++) if (r._reserved[k]) return -3;
        c->dx = r.left; c->dy = r.top; c->dw = r.width; c->dh = r.height;
    }
    if (c->sw == 0 || c->sh == 0 || c->sx + c->sw > se->width || c->sy + c->sh > se->height)
        return -4;
    if (c->dw == 0 || c->dh == 0 || c->dx + c->dw > de->width || c->dy + c->dh > de->height)
        return -4;
    return 0;
}

static void cut_entry(const NvBufSurfaceParams *se, NvBufSurfaceParams *de, const Cut *c,
                      bool bilinear) {
    uint32_t sx = c->sx, sy = c->sy, sw = c->sw, sh = c->sh;
    uint32_t dx = c->dx, dy = c->dy, dw = c->dw, dh = c->dh;
    uint8_t *out = de->dataPtr;
    for (uint32_t y = 0; y < dh; y++) {
        for (uint32_t x = 0; x < dw; x++) {
            float px[3];
            // Pixel centres, as OpenCV's INTER_LINEAR; edges repeat inside the crop.
            float fx = (x + 0.5f) * sw / dw - 0.5f, fy = (y + 0.5f) * sh / dh - 0.5f;
            if (!bilinear) {
                rgb_at(se, sx + (uint32_t)((x * sw) / dw), sy + (uint32_t)((y * sh) / dh), px);
            } else {
                if (fx < 0) fx = 0;
                if (fy < 0) fy = 0;
                int x0 = (int)fx, y0 = (int)fy;
                int x1 = x0 + 1 < (int)sw ? x0 + 1 : x0, y1 = y0 + 1 < (int)sh ? y0 + 1 : y0;
                float ax = fx - x0, ay = fy - y0, a[3], b[3], cc[3], d[3];
                rgb_at(se, sx + x0, sy + y0, a);
                rgb_at(se, sx + x1, sy + y0, b);
                rgb_at(se, sx + x0, sy + y1, cc);
                rgb_at(se, sx + x1, sy + y1, d);
                for (int k = 0; k < 3; k++)
                    px[k] = (a[k] * (1 - ax) + b[k] * ax) * (1 - ay) + (cc[k] * (1 - ax) + d[k] * ax) * ay;
            }
            uint8_t *o = out + (dy + y) * de->planeParams.pitch[0] + (dx + x) * 4;
            o[0] = clamp8(px[0]); o[1] = clamp8(px[1]); o[2] = clamp8(px[2]); o[3] = 255;
        }
    }
}

// Takes one injected failure from `counter`, if any is left.
static bool take_failure(int *counter) {
    int left = __atomic_load_n(counter, __ATOMIC_SEQ_CST);
    while (left > 0) {
        if (__atomic_compare_exchange_n(counter, &left, left - 1, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return true;
    }
    return false;
}

static int transform(NvBufSurface *src, NvBufSurface *dst, NvBufSurfTransformParams *t) {
    if (!src || !dst || !t) return -3;
    if (!session_set) { LOG("no session parameters were set on this thread\n"); return -2; }
    for (int i = 0; i < 4; i++)
        if (t->_reserved[i]) { LOG("transform params: reserved bytes not zero\n"); return -3; }
    uint32_t n = src->numFilled;
    if (n == 0 || n > src->batchSize) {
        LOG("a source of batchSize %u / numFilled %u\n", src->batchSize, n);
        return -3;
    }
    if (src->numFilled > dst->batchSize || src->batchSize > dst->batchSize) {
        LOG("a source of batchSize %u / numFilled %u into a destination of batchSize %u is "
            "refused (NVIDIA's crashes)\n", src->batchSize, src->numFilled, dst->batchSize);
        return -3;
    }
    if (!src->surfaceList) return -3;
    for (uint32_t i = 0; i < n; i++) {
        if (!standin_entry_is_known(&src->surfaceList[i])) {
            LOG("source entry %u is neither an entry of a surface this library made nor a copy "
                "of one (wrong NvBufSurfaceParams stride?)\n", i);
            return -3;
        }
    }
    if (!standin_owner_of_entry(dst->surfaceList)) return -3;
    Cut cuts_small[16];
    Cut *cuts = n <= 16 ? cuts_small : malloc(n * sizeof *cuts);
    if (!cuts) return -2;
    int code = 0;
    for (uint32_t i = 0; i < n && code == 0; i++)
        code = check_entry(&src->surfaceList[i], &dst->surfaceList[i], t, i, &cuts[i]);
    if (code == 0 && take_failure(n > 1 ? &fail_batched : &fail_single)) {
        LOG("an injected failure of a %u-entry transform\n", n);
        code = -2;
    }
    if (code == 0) {
        bool bilinear = (t->transform_flag & 4) && t->transform_filter != 0;
        for (uint32_t i = 0; i < n; i++)
            cut_entry(&src->surfaceList[i], &dst->surfaceList[i], &cuts[i], bilinear);
        __atomic_add_fetch(&transforms, (int)n, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&transform_calls, 1, __ATOMIC_SEQ_CST);
    }
    if (cuts != cuts_small) free(cuts);
    return code;
}

int NvBufSurfTransform(NvBufSurface *src, NvBufSurface *dst, NvBufSurfTransformParams *t) {
    uint64_t t0 = thread_ns();
    int code = transform(src, dst, t);
    __atomic_add_fetch(&transform_ns, thread_ns() - t0, __ATOMIC_SEQ_CST);
    return code;
}

#endif // STANDIN_TRANSFORM
