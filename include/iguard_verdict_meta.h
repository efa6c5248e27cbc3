/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * iguard_verdict_meta.h: the verdict iguardverify attaches to DeepStream metadata.
 *
 * For each verdict, iguardverify adds an NvDsUserMeta to the NvDsFrameMeta of the verdict's
 * source (frame_meta->source_id == source_id) in the next batch that carries that source:
 *
 *   user_meta->base_meta.meta_type == nvds_get_user_meta_type("IGUARD.VERDICT")
 *   user_meta->user_meta_data      -> IGuardVerdictMeta (below)
 *
 * The structure is allocated with g_malloc; the user meta's copy and release functions (set by
 * iguardverify) duplicate and free it, so buffer copies, tee and queue keep it. Readers must
 * not free or keep the pointer beyond the buffer's life. All strings are NUL-terminated UTF-8,
 * truncated at a character boundary to fit. Layout: LP64 (x86_64, aarch64), no padding.
 */
#ifndef IGUARD_VERDICT_META_H
#define IGUARD_VERDICT_META_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The name to give nvds_get_user_meta_type(). */
#define IGUARD_VERDICT_USER_META_NAME "IGUARD.VERDICT"
/* IGuardVerdictMeta.version of this layout; later versions only append fields. */
#define IGUARD_VERDICT_META_VERSION 1
/* object_id when the trigger had no tracker id; clip_*_pts when unknown. */
#define IGUARD_VERDICT_NONE UINT64_MAX

typedef enum {
  IGUARD_VERDICT_VERIFIED = 0, /* a model scored the clip at or above the threshold */
  IGUARD_VERDICT_REJECTED = 1, /* a model scored it below the threshold */
  IGUARD_VERDICT_FALLBACK = 2, /* no model: the label-based fallback scored it */
  IGUARD_VERDICT_TIMEOUT = 3,  /* scoring did not finish before worker-timeout */
  IGUARD_VERDICT_DROPPED = 4,  /* never scored: queue overflow, flush or stop */
  IGUARD_VERDICT_ERROR = 5     /* the scorer failed */
} IGuardVerdictStatus;

typedef struct {
  uint32_t version;            /*   0: IGUARD_VERDICT_META_VERSION */
  uint32_t size;               /*   4: sizeof (IGuardVerdictMeta) as written */
  uint64_t request_id;         /*   8 */
  uint64_t object_id;          /*  16: the trigger's tracker id, or IGUARD_VERDICT_NONE */
  uint32_t source_id;          /*  24 */
  uint32_t pad_index;          /*  28 */
  int32_t status;              /*  32: IGuardVerdictStatus */
  uint32_t frames;             /*  36: frames in the clip */
  double score;                /*  40: in [0, 1]; NaN when the clip was never scored */
  double threshold;            /*  48 */
  double trigger_confidence;   /*  56 */
  uint64_t clip_start_pts;     /*  64: ns, or IGUARD_VERDICT_NONE */
  uint64_t clip_end_pts;       /*  72: ns, or IGUARD_VERDICT_NONE */
  double queue_ms;             /*  80 */
  double processing_ms;        /*  88 */
  char status_name[16];        /*  96: "verified", "rejected", ... */
  char label[128];             /* 112: the class the scorer named; empty when unscored */
  char trigger_label[128];     /* 240 */
  char scorer[32];             /* 368: "onnx", "triton", "fallback", ... */
  char reason[256];            /* 400: why dropped / timed out / failed; empty otherwise */
} IGuardVerdictMeta;           /* 656 bytes */

#ifdef __cplusplus
}
#endif

#endif /* IGUARD_VERDICT_META_H */
