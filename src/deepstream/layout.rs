// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where DeepStream keeps what we read and write: byte offsets into its C structures on LP64
//! targets (x86_64, aarch64), per release.
//!
//! These are facts about someone else's ABI. Each says which releases it holds for and where it
//! was confirmed: "checked" means against NVIDIA's own `libnvds_meta.so` 9.0.2 (PyPI
//! `nvidia-deepstream-videodecode-cu13`), by the tests in `tests/deepstream_nvidia.rs` or by
//! reading the offsets NVIDIA's compiled release functions use; the rest come from the public
//! headers (`nvdsmeta.h`, `gstnvdsmeta.h`, `nvll_osd_struct.h`) of DeepStream 5.0 to 8.x. When
//! one moves, add a [`super::DeepStreamLayout`] variant rather than editing a value in place.

/// The name DeepStream registers its GstMeta API type under (with the tag `nvdsmeta`).
pub const META_API_NAME: &str = "NvDsMetaAPI";
/// The tag DeepStream registers the API with.
pub const META_API_TAG: &str = "nvdsmeta";
/// `NvDsMeta.meta_type` of the batch meta: `NVDS_GST_CUSTOM_META` (4096) + 1.
pub const BATCH_META_TYPE: i32 = 4097;
/// The name our verdict user meta type is registered under with `nvds_get_user_meta_type`.
pub const VERDICT_USER_META_NAME: &std::ffi::CStr = c"IGUARD.VERDICT";

/// Frame metas read from one buffer at most; the rest of a longer (or circular) list is skipped.
/// Not an offset but our bound on walking NVIDIA's lists, shared by the reader
/// (`detections::deepstream`) and the verdict writer ([`super::verdict_meta`]).
pub const MAX_FRAMES_PER_BUFFER: usize = 1024;
/// Object metas read from one buffer at most, over all its frames.
pub const MAX_OBJECTS_PER_BUFFER: usize = 65536;

/// `NvDsMeta`, the GstMeta DeepStream attaches: `GstMeta` (16 bytes), then `meta_data`,
/// `user_data` (pointers) and `meta_type` (gint), then fields we do not read.
/// DeepStream 5.0–9.x.
pub mod meta {
    /// `gpointer meta_data`: the `NvDsBatchMeta` for the batch type.
    pub const META_DATA: usize = 16;
    /// `gpointer user_data`.
    pub const USER_DATA: usize = 24;
    /// `gint meta_type`.
    pub const META_TYPE: usize = 32;
    /// `NvDsMetaCopyFunc copyfunc`: for a batch meta NVIDIA's own `nvds_batch_meta_copy_func`
    /// (checked against 9.0.2: `deepstream_nvidia` tests).
    pub const COPY_FUNC: usize = 40;
    /// The registered size of the meta must be at least this for us to read it.
    pub const MIN_SIZE: usize = META_TYPE + 4;
}

/// `NvDsBaseMeta`, the head of every DeepStream meta (40 bytes). DeepStream 5.0–9.x; checked.
pub mod base {
    /// `NvDsBatchMeta *batch_meta`.
    pub const BATCH_META: usize = 0;
    /// `NvDsMetaType meta_type` (an int): frame 2, object 3, classifier 5, label info 6, user 7.
    pub const META_TYPE: usize = 8;
    /// `void *uContext`.
    pub const U_CONTEXT: usize = 16;
    /// `NvDsMetaCopyFunc copy_func`.
    pub const COPY_FUNC: usize = 24;
    /// `NvDsMetaReleaseFunc release_func`.
    pub const RELEASE_FUNC: usize = 32;
    /// Size of `NvDsBaseMeta`.
    pub const SIZE: usize = 40;
}

/// `NvDsMetaType` values of NVIDIA's own metas (checked).
pub mod meta_type {
    pub const FRAME: i32 = 2;
    pub const OBJECT: i32 = 3;
    pub const CLASSIFIER: i32 = 5;
    pub const LABEL_INFO: i32 = 6;
    pub const USER: i32 = 7;
}

/// `NvDsMetaPool`: `meta_type` @0, `max_elements_in_pool` @4, `element_size` @8. DeepStream
/// 5.0–9.x (header); the object pool's `element_size` of 552 in 9.0.2 is checked.
pub mod pool {
    /// `guint element_size`: the size the pool allocates each meta with.
    pub const ELEMENT_SIZE: usize = 8;
}

/// `NvDsBatchMeta` (begins with `NvDsBaseMeta`). DeepStream 5.0–9.x.
pub mod batch {
    /// `guint max_frames_in_batch`. The producer sets it (9.0.2's `nvds_create_batch_meta` does
    /// not), and NVIDIA's batch copy sizes its copy by it: checked, a batch left at 0 crashes
    /// `gst_buffer_copy` in `nvds_acquire_meta_from_pool`.
    pub const MAX_FRAMES_IN_BATCH: usize = 40;
    /// `guint num_frames_in_batch` (counted by `nvds_add_frame_meta_to_batch`; checked).
    pub const NUM_FRAMES_IN_BATCH: usize = 44;
    /// `NvDsMetaPool *obj_meta_pool` (header; its element size is checked).
    pub const OBJ_META_POOL: usize = 56;
    /// `GList *frame_meta_list` of `NvDsFrameMeta *` (checked).
    pub const FRAME_META_LIST: usize = 96;
}

/// `NvDsFrameMeta` (begins with `NvDsBaseMeta`). DeepStream 5.0–9.x.
pub mod frame {
    /// `guint pad_index`: the `nvstreammux` sink pad.
    pub const PAD_INDEX: usize = 40;
    /// `guint batch_id`: the frame's place in the batch.
    pub const BATCH_ID: usize = 44;
    /// `gint frame_num`.
    pub const FRAME_NUM: usize = 48;
    /// `guint64 buf_pts`: the source buffer's PTS in ns.
    pub const BUF_PTS: usize = 56;
    /// `guint source_id`.
    pub const SOURCE_ID: usize = 72;
    /// `guint source_frame_width`.
    pub const SOURCE_FRAME_WIDTH: usize = 80;
    /// `guint source_frame_height`.
    pub const SOURCE_FRAME_HEIGHT: usize = 84;
    /// `guint num_obj_meta` (checked).
    pub const NUM_OBJ_META: usize = 96;
    /// `GList *obj_meta_list` of `NvDsObjectMeta *` (checked).
    pub const OBJ_META_LIST: usize = 104;
    /// `GList *display_meta_list` (checked).
    pub const DISPLAY_META_LIST: usize = 112;
    /// `GList *frame_user_meta_list` of `NvDsUserMeta *` (checked).
    pub const FRAME_USER_META_LIST: usize = 120;
}

/// `NvDsObjectMeta` (begins with `NvDsBaseMeta`). DeepStream 5.0–9.x unless noted.
pub mod object {
    /// `gint unique_component_id`.
    pub const UNIQUE_COMPONENT_ID: usize = 48;
    /// `gint class_id`.
    pub const CLASS_ID: usize = 52;
    /// `guint64 object_id`: the tracker's id.
    pub const OBJECT_ID: usize = 56;
    /// `object_id` of an object no tracker has seen (all bits set).
    pub const UNTRACKED_OBJECT_ID: u64 = u64::MAX;
    /// `gfloat confidence`.
    pub const CONFIDENCE: usize = 96;
    /// `rect_params.left`, `.top`, `.width`, `.height`: gfloats in frame pixels.
    pub const RECT_LEFT: usize = 104;
    pub const RECT_TOP: usize = 108;
    pub const RECT_WIDTH: usize = 112;
    pub const RECT_HEIGHT: usize = 116;
    /// `text_params.display_text` (`char *`, owned: NVIDIA's release function `g_free`s it) in
    /// DeepStream 5.0 to 8.x: `text_params` is the 104-byte `NvOSD_TextParams` right before
    /// `obj_label` (headers).
    pub const DISPLAY_TEXT_V5_TO_V8: usize = 232;
    /// `text_params.display_text` in DeepStream 9.x. Checked: 9.0.2's `release_obj_meta`
    /// `g_free`s the pointer at byte 240 (and `nvds_copy_obj_meta` `g_strdup`s it); the tests
    /// also see NVIDIA's copy duplicate the text found there.
    pub const DISPLAY_TEXT_V9: usize = 240;
    /// `gchar obj_label[128]` in DeepStream 5.0 to 8.x.
    pub const OBJ_LABEL_V5_TO_V8: usize = 336;
    /// `gchar obj_label[128]` in DeepStream 9.x (the rect params grew by 8 bytes; checked).
    pub const OBJ_LABEL_V9: usize = 344;
    /// Length of the `obj_label` array.
    pub const OBJ_LABEL_LEN: usize = 128;
    /// `GList *classifier_meta_list` in DeepStream 5.0 to 8.x (`obj_label` + 128).
    pub const CLASSIFIER_META_LIST_V5_TO_V8: usize = 464;
    /// `GList *classifier_meta_list` in DeepStream 9.x (checked).
    pub const CLASSIFIER_META_LIST_V9: usize = 472;
    /// `sizeof(NvDsObjectMeta)` in DeepStream 5.0 to 8.x: `classifier_meta_list` at 464, then
    /// `obj_user_meta_list` (8 bytes), `misc_obj_info[4]` and `reserved[4]` (`gint64`s): 544
    /// (headers; the 9.x size below is the same tail after a `classifier_meta_list` 8 bytes on).
    pub const SIZE_V5_TO_V8: u32 = 544;
    /// The size 9.0.2's object pool allocates (checked).
    pub const SIZE_V9: u32 = 552;
    /// The object pool element sizes whose layout is known, and that layout. A batch whose
    /// pool allocates any other size is of a release we have no facts for: nothing is written
    /// to it.
    pub const KNOWN_SIZES: [(u32, crate::deepstream::DeepStreamLayout); 2] = [
        (SIZE_V5_TO_V8, crate::deepstream::DeepStreamLayout::V5toV8),
        (SIZE_V9, crate::deepstream::DeepStreamLayout::V9),
    ];
}

/// `NvDsClassifierMeta` (begins with `NvDsBaseMeta`; 64 bytes in 9.0.2). DeepStream 5.0–9.x.
pub mod classifier {
    /// `guint num_labels` (checked).
    pub const NUM_LABELS: usize = 40;
    /// `gint unique_component_id` (checked: 9.0.2's `nvds_copy_classifier_meta` copies it).
    pub const UNIQUE_COMPONENT_ID: usize = 44;
    /// `GList *label_info_list` of `NvDsLabelInfo *` (checked).
    pub const LABEL_INFO_LIST: usize = 48;
    /// `const gchar *classifier_type` (header; 9.0.2's release function clears, never frees it,
    /// and its copy function does not copy it: copies of the buffer have none).
    pub const CLASSIFIER_TYPE: usize = 56;
}

/// `NvDsLabelInfo` (begins with `NvDsBaseMeta`; 200 bytes). DeepStream 5.0–9.x. Every offset
/// checked: 9.0.2's release function clears 200 bytes and `g_free`s `pResult_label` at 176,
/// and `nvds_copy_label_info_meta` copies `num_classes` @40, the 128 bytes @44, `g_strdup`s
/// @176, copies the two guints @184 and the float @192.
pub mod label_info {
    /// `guint num_classes`.
    pub const NUM_CLASSES: usize = 40;
    /// `gchar result_label[128]`.
    pub const RESULT_LABEL: usize = 44;
    /// Length of `result_label`.
    pub const RESULT_LABEL_LEN: usize = 128;
    /// `gchar *pResult_label`: the label when it does not fit `result_label` (owned, `g_free`d).
    pub const P_RESULT_LABEL: usize = 176;
    /// `guint result_class_id`.
    pub const RESULT_CLASS_ID: usize = 184;
    /// `guint label_id`.
    pub const LABEL_ID: usize = 188;
    /// `gfloat result_prob`.
    pub const RESULT_PROB: usize = 192;
    /// Size of `NvDsLabelInfo`.
    pub const SIZE: usize = 200;
}

/// `NvDsUserMeta`: `NvDsBaseMeta`, then `void *user_meta_data`. DeepStream 5.0–9.x. Checked:
/// 9.0.2's `copy_user_meta` sets the copy's pointer at 40 to what `base_meta.copy_func` (at 24)
/// returns for the source user meta.
pub mod user {
    /// `void *user_meta_data`.
    pub const USER_META_DATA: usize = 40;
}
