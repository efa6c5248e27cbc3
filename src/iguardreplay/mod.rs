// SPDX-License-Identifier: MIT OR Apache-2.0
//! Placeholder: the replay element is being written.
use gst::glib;

pub fn register(_plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Ok(())
}
