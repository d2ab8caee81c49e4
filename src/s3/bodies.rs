//! The XML bodies s4 sends (CompleteMultipartUpload, DeleteObjects), escaped by hand: a key
//! XML 1.0 cannot express is an error naming it, never a body S3 would misread.

use super::xml::{err, XmlError};

/// XML-escapes `s` into `out`; Err(c) for a character XML 1.0 cannot express at all.
/// \t \n \r become character references so that no parser normalises them away.
fn escape_into(out: &mut String, s: &str) -> Result<(), char> {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => return Err(c),
            c => out.push(c),
        }
    }
    Ok(())
}

/// <CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"…"</ETag></Part>…</CompleteMultipartUpload>
/// etags given without quotes; emitted with quotes; XML-escaped.
/// (Characters XML cannot express are dropped: S3 ETags never contain them.)
pub fn complete_multipart_body(parts: &[(u32, String)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        s.push_str("<Part><PartNumber>");
        s.push_str(&number.to_string());
        s.push_str("</PartNumber><ETag>\"");
        for c in etag.trim_matches('"').chars() {
            let _ = escape_into(&mut s, c.encode_utf8(&mut [0; 4]));
        }
        s.push_str("\"</ETag></Part>");
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

/// <Delete><Quiet>true</Quiet><Object><Key>…</Key></Object>…</Delete>, keys XML-escaped (&, <, >, ", ').
/// Keys containing characters illegal in XML 1.0 (control chars other than \t \n \r) cannot be expressed: return Err.
pub fn delete_objects_body(keys: &[&str], quiet: bool) -> Result<String, XmlError> {
    let items: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (*k, None)).collect();
    delete_objects_body_if(&items, quiet)
}

/// DeleteObjects body whose objects may carry the ETag they must still have (`<ETag>`: AWS
/// deletes only that version, else reports PreconditionFailed for the key).
pub fn delete_objects_body_if(items: &[(&str, Option<&str>)], quiet: bool) -> Result<String, XmlError> {
    let mut s = format!("<Delete><Quiet>{quiet}</Quiet>");
    for (key, etag) in items {
        s.push_str("<Object><Key>");
        escape_into(&mut s, key).map_err(|c| {
            let code = c as u32;
            err(format!("key {key:?} contains U+{code:04X}, which XML 1.0 cannot express"))
        })?;
        s.push_str("</Key>");
        if let Some(tag) = etag {
            s.push_str("<ETag>&quot;");
            escape_into(&mut s, tag.trim_matches('"')).map_err(|_| err(format!("ETag {tag:?} of {key:?}")))?;
            s.push_str("&quot;</ETag>");
        }
        s.push_str("</Object>");
    }
    s.push_str("</Delete>");
    Ok(s)
}
