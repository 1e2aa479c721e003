//! Stream framing (RFC 6587 §3.4; RFC 5425 §4.3 for TLS).
//!
//! A whole batch is framed into one buffer that the connection keeps and
//! reuses, so a batch costs one `write_all` (many messages per system call;
//! with TLS that fills 16 KiB records) and no allocation once the buffer has
//! grown to the usual batch size.
//!
//! - Octet counting (§3.4.1, the only framing RFC 5425 allows):
//!   `MSG-LEN SP SYSLOG-MSG`, `MSG-LEN` the decimal count of the message's
//!   *bytes*, without leading zeros. Any byte may appear in the message.
//! - Non-transparent (§3.4.2): `SYSLOG-MSG LF`. A CR, LF or NUL inside a
//!   message would split it; the formatter has already escaped them, so this
//!   module does not look inside messages.

use super::{Framing, Messages};

/// Append one framed message to `out`.
pub(crate) fn frame_one(out: &mut Vec<u8>, msg: &[u8], framing: Framing) {
    match framing {
        Framing::OctetCounting => {
            let mut len = itoa::Buffer::new();
            out.extend_from_slice(len.format(msg.len()).as_bytes());
            out.push(b' ');
            out.extend_from_slice(msg);
        }
        Framing::Lf => {
            out.extend_from_slice(msg);
            out.push(b'\n');
        }
    }
}

/// Replace the contents of `out` with every message of `msgs`, framed, in
/// order.
pub(crate) fn frame_batch(out: &mut Vec<u8>, msgs: &Messages, framing: Framing) {
    out.clear();
    // Worst case overhead per message: 20 digits + SP, or one LF.
    let per_msg = match framing {
        Framing::OctetCounting => 21,
        Framing::Lf => 1,
    };
    out.reserve(msgs.byte_len() + per_msg * msgs.len());
    for msg in msgs.iter() {
        frame_one(out, msg, framing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[&[u8]]) -> Messages {
        let mut m = Messages::new();
        for item in items {
            m.buffer().extend_from_slice(item);
            m.commit();
        }
        m
    }

    #[test]
    fn octet_counting_prefixes_byte_length_and_space() {
        let mut out = Vec::new();
        frame_batch(
            &mut out,
            &batch(&[b"<14>1 a", b"xy"]),
            Framing::OctetCounting,
        );
        assert_eq!(out, b"7 <14>1 a2 xy");
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        // "é" is two bytes, the BOM three: MSG-LEN counts octets.
        let msg = "\u{feff}é".as_bytes();
        let mut out = Vec::new();
        frame_one(&mut out, msg, Framing::OctetCounting);
        assert_eq!(&out[..2], b"5 ");
        assert_eq!(&out[2..], msg);
    }

    #[test]
    fn octet_counting_keeps_embedded_newlines() {
        let mut out = Vec::new();
        frame_one(&mut out, b"a\nb", Framing::OctetCounting);
        assert_eq!(out, b"3 a\nb");
    }

    #[test]
    fn octet_counting_empty_message_is_zero_without_padding() {
        let mut out = Vec::new();
        frame_one(&mut out, b"", Framing::OctetCounting);
        assert_eq!(out, b"0 ");
    }

    #[test]
    fn lf_framing_appends_one_lf() {
        let mut out = Vec::new();
        frame_batch(&mut out, &batch(&[b"m1", b"m2"]), Framing::Lf);
        assert_eq!(out, b"m1\nm2\n");
    }

    #[test]
    fn frame_batch_reuses_buffer() {
        let mut out = b"stale".to_vec();
        frame_batch(&mut out, &batch(&[b"x"]), Framing::Lf);
        assert_eq!(out, b"x\n");
    }
}
