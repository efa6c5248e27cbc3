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
//  - struct sizes: create params must have their 8.0+ reserved tail zero; a transform source's
//    surfaceList must point at an entry of a surface this library made (an entry boundary at
//    416 bytes), so a caller using the wrong stride is refused;
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

static __thread bool session_set;
static int transforms;

int NvBufSurfTransformSetSessionParams(NvBufSurfTransformConfigParams *c) {
    if (!c) return -3;
    for (int i = 0; i < 4; i++)
        if (c->_reserved[i]) { LOG("config params: reserved bytes not zero\n"); return -3; }
    session_set = true;
    return 0;
}

static uint64_t transform_ns;

// Stand-in only: the number of transforms done (tests check no tile bypassed it).
int standin_transforms(void) { return __atomic_load_n(&transforms, __ATOMIC_SEQ_CST); }

// Stand-in only: thread CPU time spent in NvBufSurfTransform, summed (the benchmark takes it
// out of the streaming thread's figure: on a GPU that work is not the CPU's).
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

int NvBufSurfTransform(NvBufSurface *src, NvBufSurface *dst, NvBufSurfTransformParams *t) {
    if (!src || !dst || !t) return -3;
    if (!session_set) { LOG("no session parameters were set on this thread\n"); return -2; }
    for (int i = 0; i < 4; i++)
        if (t->_reserved[i]) { LOG("transform params: reserved bytes not zero\n"); return -3; }
    if (src->numFilled > dst->batchSize || src->batchSize > dst->batchSize) {
        LOG("a source of batchSize %u / numFilled %u into a destination of batchSize %u is "
            "refused (NVIDIA's crashes)\n", src->batchSize, src->numFilled, dst->batchSize);
        return -3;
    }
    if (!src->surfaceList || !standin_owner_of_entry(src->surfaceList)) {
        LOG("the source's surfaceList is not an entry of a surface this library made (wrong "
            "NvBufSurfaceParams stride?)\n");
        return -3;
    }
    if (!standin_owner_of_entry(dst->surfaceList)) return -3;
    const NvBufSurfaceParams *se = &src->surfaceList[0];
    NvBufSurfaceParams *de = &dst->surfaceList[0];
    if (se->layout != 0) { LOG("block-linear source: unsupported here\n"); return -1; }
    uint32_t f = se->colorFormat;
    if (!(f == NV12 || f == NV12_ER || f == RGBA || f == BGRA || f == RGBX || f == BGRX)) {
        LOG("source colour format %u unsupported\n", f);
        return -1;
    }
    if (de->colorFormat != RGBA || de->layout != 0) return -1;
    uint32_t sx = 0, sy = 0, sw = se->width, sh = se->height;
    if (t->transform_flag & 1) {
        if (!t->src_rect) return -3;
        NvBufSurfTransformRect r = *t->src_rect;
        for (int i = 0; i < 4; i++) if (r._reserved[i]) return -3;
        sx = r.left; sy = r.top; sw = r.width; sh = r.height;
    }
    uint32_t dx = 0, dy = 0, dw = de->width, dh = de->height;
    if (t->transform_flag & 2) {
        if (!t->dst_rect) return -3;
        dx = t->dst_rect->left; dy = t->dst_rect->top;
        dw = t->dst_rect->width; dh = t->dst_rect->height;
    }
    if (sw == 0 || sh == 0 || sx + sw > se->width || sy + sh > se->height) return -4;
    if (dw == 0 || dh == 0 || dx + dw > de->width || dy + dh > de->height) return -4;
    uint64_t t0 = thread_ns();
    bool bilinear = (t->transform_flag & 4) && t->transform_filter != 0;
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
                float ax = fx - x0, ay = fy - y0, a[3], b[3], c[3], d[3];
                rgb_at(se, sx + x0, sy + y0, a);
                rgb_at(se, sx + x1, sy + y0, b);
                rgb_at(se, sx + x0, sy + y1, c);
                rgb_at(se, sx + x1, sy + y1, d);
                for (int k = 0; k < 3; k++)
                    px[k] = (a[k] * (1 - ax) + b[k] * ax) * (1 - ay) + (c[k] * (1 - ax) + d[k] * ax) * ay;
            }
            uint8_t *o = out + (dy + y) * de->planeParams.pitch[0] + (dx + x) * 4;
            o[0] = clamp8(px[0]); o[1] = clamp8(px[1]); o[2] = clamp8(px[2]); o[3] = 255;
        }
    }
    __atomic_add_fetch(&transforms, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&transform_ns, thread_ns() - t0, __ATOMIC_SEQ_CST);
    return 0;
}

#endif // STANDIN_TRANSFORM
