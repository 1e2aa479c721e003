//! `header`: HOSTNAME, APP-NAME, PROCID and MSGID of the record's message
//! from templates. What a template renders is made to fit the header field
//! by the encoder (printable ASCII, the RFC's length; counted in
//! `header_fields_sanitized`), and an empty rendering stands for the nil
//! value `-`.

use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};
use crate::template::Template;

/// A compiled `header`.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) hostname: Option<Template>,
    pub(crate) app_name: Option<Template>,
    pub(crate) procid: Option<Template>,
    pub(crate) msgid: Option<Template>,
}

impl Step for Header {
    fn apply<'r>(&self, record: &mut Record<'r>, meta: &mut Meta, scratch: &'r Scratch) -> Verdict {
        for (template, slot) in [
            (&self.hostname, &mut meta.hostname),
            (&self.app_name, &mut meta.app_name),
            (&self.procid, &mut meta.procid),
            (&self.msgid, &mut meta.msgid),
        ] {
            if let Some(t) = template {
                let mut bytes = scratch.buffer();
                t.render_into(record, &mut bytes);
                *slot = Some(bytes);
            }
        }
        Verdict::Keep
    }
}
