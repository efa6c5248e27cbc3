// SPDX-License-Identifier: MIT OR Apache-2.0
//! DeepStream's own downstream events that the element acts on. Today one: `nvstreammux`'s
//! per-stream EOS, sent when one camera of a batch ends (its sink pad got EOS or was released)
//! while the batch goes on with the others.
//!
//! Facts (`gst-nvevent.h`, checked against NVIDIA's `libnvdsgst_helper.so` 9.0.2, whose
//! `gst_nvevent_new_stream_eos` the tests call): the event type is
//! `GST_EVENT_MAKE_TYPE (402, DOWNSTREAM | SERIALIZED)` (the 9.0.2 library adds the two sticky
//! flags, so only the number is compared), and its structure is named `nv-stream-eos-<id>-<n>`
//! with the source id as a `guint` field `source-id`. Parsed here rather than through
//! `gst_nvevent_parse_stream_eos`, so no NVIDIA library is opened for it.

use gst::glib::translate::IntoGlib;

/// The event number (above `GST_EVENT_NUM_SHIFT`) of `GST_NVEVENT_STREAM_EOS`.
const STREAM_EOS_NUMBER: u32 = 402;
/// What the structure's name starts with.
const STREAM_EOS_NAME: &str = "nv-stream-eos";
/// The field holding the source id.
const SOURCE_ID: &str = "source-id";

/// The source whose stream `event` ends, when it is DeepStream's per-stream EOS. An event of
/// that type whose structure does not name a source is not taken for one.
pub fn stream_eos_source(event: &gst::EventRef) -> Option<u32> {
    let number = (event.type_().into_glib() as u32) >> gst::ffi::GST_EVENT_NUM_SHIFT;
    if number != STREAM_EOS_NUMBER {
        return None;
    }
    let s = event.structure()?;
    if !s.name().starts_with(STREAM_EOS_NAME) {
        return None;
    }
    s.get::<u32>(SOURCE_ID).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::glib::translate::{ToGlibPtr, from_glib_full};

    /// An event of type `number` (downstream, serialized, with the sticky flags NVIDIA's
    /// 9.0.2 library sets) carrying `s`.
    fn event(number: u32, s: gst::Structure) -> gst::Event {
        let flags = gst::ffi::GST_EVENT_TYPE_DOWNSTREAM
            | gst::ffi::GST_EVENT_TYPE_SERIALIZED
            | gst::ffi::GST_EVENT_TYPE_STICKY
            | gst::ffi::GST_EVENT_TYPE_STICKY_MULTI;
        let t = ((number << gst::ffi::GST_EVENT_NUM_SHIFT) | flags) as gst::ffi::GstEventType;
        // SAFETY: gst_event_new_custom takes ownership of the structure and returns a new event.
        unsafe {
            let s: *mut gst::ffi::GstStructure = s.to_glib_full();
            from_glib_full(gst::ffi::gst_event_new_custom(t, s))
        }
    }

    fn structure(name: &str, id: Option<u32>) -> gst::Structure {
        let mut s = gst::Structure::new_empty(name);
        if let Some(id) = id {
            s.set(SOURCE_ID, id);
        }
        s
    }

    #[test]
    fn the_stream_eos_names_its_source() {
        gst::init().unwrap();
        let e = event(402, structure("nv-stream-eos-7-1", Some(7)));
        assert_eq!(stream_eos_source(&e), Some(7));
    }

    #[test]
    fn other_events_are_not_a_stream_eos() {
        gst::init().unwrap();
        // Pad added (400) with the same fields, a stream EOS without its field or with another
        // name, a plain custom downstream event and a real EOS.
        for e in [
            event(400, structure("nv-pad-added-7-1", Some(7))),
            event(402, structure("nv-stream-eos-7-1", None)),
            event(402, structure("other", Some(7))),
            gst::event::CustomDownstream::new(structure("nv-stream-eos-7-1", Some(7))),
            gst::event::Eos::new(),
        ] {
            assert_eq!(stream_eos_source(&e), None, "{e:?}");
        }
        let mut s = structure("nv-stream-eos-7-1", None);
        s.set(SOURCE_ID, "7");
        assert_eq!(stream_eos_source(&event(402, s)), None, "a string id");
    }
}
