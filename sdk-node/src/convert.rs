//! Conversions on the hot paths, with raw N-API calls: reading the messages
//! of one `send` and building the record objects of one fetched batch. Done
//! per batch in one native call, with property keys created once per batch.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Status, ValueType};

use crate::error::invalid;

/// Any JavaScript value, read by hand.
pub struct Raw(pub sys::napi_value);

impl FromNapiValue for Raw {
    unsafe fn from_napi_value(_env: sys::napi_env, v: sys::napi_value) -> napi::Result<Self> {
        Ok(Raw(v))
    }
}

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for Raw {}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Status::from(status),
            format!("[INTERNAL] N-API call failed: {what}"),
        ))
    }
}

unsafe fn key(env: sys::napi_env, name: &str) -> napi::Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
        sys::napi_create_string_utf8(env, name.as_ptr().cast(), name.len() as isize, &mut v),
        "create key",
    )?;
    Ok(v)
}

unsafe fn type_of(env: sys::napi_env, v: sys::napi_value) -> napi::Result<sys::napi_valuetype> {
    let mut t = 0;
    check(sys::napi_typeof(env, v, &mut t), "typeof")?;
    Ok(t)
}

unsafe fn get(
    env: sys::napi_env,
    obj: sys::napi_value,
    key: sys::napi_value,
) -> napi::Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check(
        sys::napi_get_property(env, obj, key, &mut v),
        "get property",
    )?;
    Ok(v)
}

unsafe fn string(env: sys::napi_env, v: sys::napi_value) -> napi::Result<String> {
    let mut len = 0usize;
    check(
        sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len),
        "string length",
    )?;
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    check(
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), len + 1, &mut written),
        "string",
    )?;
    buf.truncate(written);
    String::from_utf8(buf).map_err(|_| invalid("string is not valid UTF-8"))
}

/// A key, value or header value: `Buffer` (or any `Uint8Array`) or string;
/// `null`/`undefined` is `None`.
unsafe fn bytes(env: sys::napi_env, v: sys::napi_value, what: &str) -> napi::Result<Option<Bytes>> {
    match type_of(env, v)? {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
        sys::ValueType::napi_string => Ok(Some(Bytes::from(string(env, v)?))),
        sys::ValueType::napi_object => {
            let mut is_buffer = false;
            check(sys::napi_is_buffer(env, v, &mut is_buffer), "is buffer")?;
            if is_buffer {
                let mut data: *mut c_void = ptr::null_mut();
                let mut len = 0usize;
                check(
                    sys::napi_get_buffer_info(env, v, &mut data, &mut len),
                    "buffer",
                )?;
                if len == 0 || data.is_null() {
                    return Ok(Some(Bytes::new()));
                }
                let slice = std::slice::from_raw_parts(data as *const u8, len);
                return Ok(Some(Bytes::copy_from_slice(slice)));
            }
            let mut is_typed = false;
            check(
                sys::napi_is_typedarray(env, v, &mut is_typed),
                "is typed array",
            )?;
            if is_typed {
                let mut kind = 0;
                let mut len = 0usize;
                let mut data: *mut c_void = ptr::null_mut();
                let mut ab = ptr::null_mut();
                let mut off = 0usize;
                check(
                    sys::napi_get_typedarray_info(
                        env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off,
                    ),
                    "typed array",
                )?;
                if kind == sys::TypedarrayType::uint8_array {
                    if len == 0 || data.is_null() {
                        return Ok(Some(Bytes::new()));
                    }
                    let slice = std::slice::from_raw_parts(data as *const u8, len);
                    return Ok(Some(Bytes::copy_from_slice(slice)));
                }
            }
            Err(invalid(format!(
                "{what} must be a Buffer, a string or null"
            )))
        }
        _ => Err(invalid(format!(
            "{what} must be a Buffer, a string or null"
        ))),
    }
}

unsafe fn opt_u32(env: sys::napi_env, v: sys::napi_value, what: &str) -> napi::Result<Option<u32>> {
    match type_of(env, v)? {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
        sys::ValueType::napi_number => {
            let mut d = 0f64;
            check(sys::napi_get_value_double(env, v, &mut d), "number")?;
            if d < 0.0 || d.fract() != 0.0 || d > f64::from(u32::MAX) {
                return Err(invalid(format!("{what} must be a non-negative integer")));
            }
            Ok(Some(d as u32))
        }
        _ => Err(invalid(format!("{what} must be a number"))),
    }
}

/// An offset or timestamp given as a number, a decimal string or a bigint.
pub(crate) unsafe fn opt_i64(
    env: sys::napi_env,
    v: sys::napi_value,
    what: &str,
) -> napi::Result<Option<i64>> {
    match type_of(env, v)? {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
        sys::ValueType::napi_number => {
            let mut d = 0f64;
            check(sys::napi_get_value_double(env, v, &mut d), "number")?;
            if d.fract() != 0.0 || !d.is_finite() {
                return Err(invalid(format!("{what} must be an integer")));
            }
            Ok(Some(d as i64))
        }
        sys::ValueType::napi_string => {
            let s = string(env, v)?;
            s.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| invalid(format!("{what} {s:?} is not an integer")))
        }
        sys::ValueType::napi_bigint => {
            let mut n = 0i64;
            let mut lossless = false;
            check(
                sys::napi_get_value_bigint_int64(env, v, &mut n, &mut lossless),
                "bigint",
            )?;
            if !lossless {
                return Err(invalid(format!("{what} does not fit in 64 bits")));
            }
            Ok(Some(n))
        }
        _ => Err(invalid(format!(
            "{what} must be a number, a string or a bigint"
        ))),
    }
}

unsafe fn headers(env: sys::napi_env, v: sys::napi_value) -> napi::Result<Vec<(String, Bytes)>> {
    match type_of(env, v)? {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => return Ok(Vec::new()),
        sys::ValueType::napi_object => {}
        _ => return Err(invalid("headers must be an object")),
    }
    let mut names = ptr::null_mut();
    check(
        sys::napi_get_property_names(env, v, &mut names),
        "header names",
    )?;
    let mut n = 0u32;
    check(
        sys::napi_get_array_length(env, names, &mut n),
        "header count",
    )?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut name = ptr::null_mut();
        check(
            sys::napi_get_element(env, names, i, &mut name),
            "header name",
        )?;
        let name_s = string(env, name)?;
        let value = get(env, v, name)?;
        let mut is_array = false;
        check(sys::napi_is_array(env, value, &mut is_array), "is array")?;
        if is_array {
            // Several values for one name, kept in order.
            let mut len = 0u32;
            check(sys::napi_get_array_length(env, value, &mut len), "length")?;
            for j in 0..len {
                let mut item = ptr::null_mut();
                check(sys::napi_get_element(env, value, j, &mut item), "element")?;
                let b = bytes(env, item, "a header value")?.unwrap_or_default();
                out.push((name_s.clone(), b));
            }
        } else {
            let b = bytes(env, value, "a header value")?.unwrap_or_default();
            out.push((name_s, b));
        }
    }
    Ok(out)
}

/// Reads `messages: [{ key, value, headers, partition, timestamp }]`.
pub(crate) unsafe fn read_messages(
    env: sys::napi_env,
    topic: &str,
    messages: sys::napi_value,
) -> napi::Result<Vec<tidelog::ProducerRecord>> {
    let mut is_array = false;
    check(sys::napi_is_array(env, messages, &mut is_array), "is array")?;
    if !is_array {
        return Err(invalid("`messages` must be an array"));
    }
    let mut n = 0u32;
    check(sys::napi_get_array_length(env, messages, &mut n), "length")?;
    let k_key = key(env, "key")?;
    let k_value = key(env, "value")?;
    let k_headers = key(env, "headers")?;
    let k_partition = key(env, "partition")?;
    let k_timestamp = key(env, "timestamp")?;
    let topic: String = topic.to_string();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut m = ptr::null_mut();
        check(sys::napi_get_element(env, messages, i, &mut m), "message")?;
        if type_of(env, m)? != sys::ValueType::napi_object {
            return Err(invalid(format!("messages[{i}] must be an object")));
        }
        let record = tidelog::ProducerRecord {
            topic: topic.clone(),
            partition: opt_u32(env, get(env, m, k_partition)?, "partition")?,
            key: bytes(env, get(env, m, k_key)?, "key")?,
            value: bytes(env, get(env, m, k_value)?, "value")?,
            headers: headers(env, get(env, m, k_headers)?)?,
            timestamp: opt_i64(env, get(env, m, k_timestamp)?, "timestamp")?,
        };
        out.push(record);
    }
    Ok(out)
}

/// The records of one partition handed to JavaScript together.
pub struct PartitionRecords {
    pub topic: Arc<str>,
    pub partition: u32,
    pub records: Vec<tidelog::ConsumerRecord>,
}

/// What one `nextBatch` call returns.
pub struct Batches(pub Vec<PartitionRecords>);

impl TypeName for Batches {
    fn type_name() -> &'static str {
        "Array<PartitionBatch>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

unsafe fn set(
    env: sys::napi_env,
    obj: sys::napi_value,
    key: sys::napi_value,
    v: sys::napi_value,
) -> napi::Result<()> {
    check(sys::napi_set_property(env, obj, key, v), "set property")
}

unsafe fn js_string(env: sys::napi_env, s: &str) -> napi::Result<sys::napi_value> {
    key(env, s)
}

unsafe fn js_buffer(env: sys::napi_env, b: &Option<Bytes>) -> napi::Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    match b {
        None => check(sys::napi_get_null(env, &mut v), "null")?,
        Some(b) => {
            let mut data = ptr::null_mut();
            check(
                sys::napi_create_buffer_copy(env, b.len(), b.as_ptr().cast(), &mut data, &mut v),
                "buffer",
            )?;
        }
    }
    Ok(v)
}

impl ToNapiValue for Batches {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let k_topic = key(env, "topic")?;
        let k_partition = key(env, "partition")?;
        let k_messages = key(env, "messages")?;
        let k_key = key(env, "key")?;
        let k_value = key(env, "value")?;
        let k_headers = key(env, "headers")?;
        let k_offset = key(env, "offset")?;
        let k_timestamp = key(env, "timestamp")?;
        let mut out = ptr::null_mut();
        check(
            sys::napi_create_array_with_length(env, val.0.len(), &mut out),
            "array",
        )?;
        for (i, batch) in val.0.iter().enumerate() {
            let mut b = ptr::null_mut();
            check(sys::napi_create_object(env, &mut b), "object")?;
            set(env, b, k_topic, js_string(env, &batch.topic)?)?;
            let mut p = ptr::null_mut();
            check(
                sys::napi_create_uint32(env, batch.partition, &mut p),
                "number",
            )?;
            set(env, b, k_partition, p)?;
            let mut msgs = ptr::null_mut();
            check(
                sys::napi_create_array_with_length(env, batch.records.len(), &mut msgs),
                "array",
            )?;
            let mut num = itoa_buf();
            for (j, r) in batch.records.iter().enumerate() {
                let mut m = ptr::null_mut();
                check(sys::napi_create_object(env, &mut m), "object")?;
                set(env, m, k_key, js_buffer(env, &r.key)?)?;
                set(env, m, k_value, js_buffer(env, &r.value)?)?;
                let mut h = ptr::null_mut();
                check(sys::napi_create_object(env, &mut h), "object")?;
                for (name, value) in &r.headers {
                    let hk = js_string(env, name)?;
                    set(env, h, hk, js_buffer(env, &Some(value.clone()))?)?;
                }
                set(env, m, k_headers, h)?;
                set(
                    env,
                    m,
                    k_offset,
                    js_string(env, fmt_i64(&mut num, r.offset))?,
                )?;
                set(
                    env,
                    m,
                    k_timestamp,
                    js_string(env, fmt_i64(&mut num, r.timestamp))?,
                )?;
                check(sys::napi_set_element(env, msgs, j as u32, m), "element")?;
            }
            set(env, b, k_messages, msgs)?;
            check(sys::napi_set_element(env, out, i as u32, b), "element")?;
        }
        Ok(out)
    }
}

fn itoa_buf() -> String {
    String::with_capacity(24)
}

fn fmt_i64(buf: &mut String, n: i64) -> &str {
    use std::fmt::Write;
    buf.clear();
    let _ = write!(buf, "{n}");
    buf.as_str()
}

unsafe fn typed<'a, T>(
    env: sys::napi_env,
    v: sys::napi_value,
    kind: sys::napi_typedarray_type,
    what: &str,
) -> napi::Result<Option<&'a [T]>> {
    match type_of(env, v)? {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => return Ok(None),
        _ => {}
    }
    let mut is_typed = false;
    check(
        sys::napi_is_typedarray(env, v, &mut is_typed),
        "is typed array",
    )?;
    if !is_typed {
        return Err(invalid(format!("{what} must be a typed array")));
    }
    let mut k = 0;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut off = 0usize;
    check(
        sys::napi_get_typedarray_info(env, v, &mut k, &mut len, &mut data, &mut ab, &mut off),
        "typed array",
    )?;
    if k != kind {
        return Err(invalid(format!("{what} has the wrong typed array type")));
    }
    if len == 0 || data.is_null() {
        return Ok(Some(&[]));
    }
    Ok(Some(std::slice::from_raw_parts(data as *const T, len)))
}

/// Reads the packed form of `sendPacked` (see `Producer::send_packed`).
pub(crate) unsafe fn read_packed(
    env: sys::napi_env,
    topic: &str,
    data: sys::napi_value,
    key_lengths: sys::napi_value,
    value_lengths: sys::napi_value,
    partitions: sys::napi_value,
    timestamps: sys::napi_value,
) -> napi::Result<Vec<tidelog::ProducerRecord>> {
    let data = bytes(env, data, "data")?.unwrap_or_default();
    let keys: &[i32] = typed(
        env,
        key_lengths,
        sys::TypedarrayType::int32_array,
        "keyLengths",
    )?
    .unwrap_or(&[]);
    let values: &[i32] = typed(
        env,
        value_lengths,
        sys::TypedarrayType::int32_array,
        "valueLengths",
    )?
    .unwrap_or(&[]);
    let parts: Option<&[i32]> = typed(
        env,
        partitions,
        sys::TypedarrayType::int32_array,
        "partitions",
    )?;
    let times: Option<&[f64]> = typed(
        env,
        timestamps,
        sys::TypedarrayType::float64_array,
        "timestamps",
    )?;
    let n = values.len();
    if keys.len() != n || parts.is_some_and(|p| p.len() != n) || times.is_some_and(|t| t.len() != n)
    {
        return Err(invalid("packed message columns differ in length"));
    }
    let mut pos = 0usize;
    let mut take = |len: i32| -> napi::Result<Option<Bytes>> {
        if len < 0 {
            return Ok(None);
        }
        let end = pos + len as usize;
        if end > data.len() {
            return Err(invalid("packed lengths exceed the data"));
        }
        let b = data.slice(pos..end);
        pos = end;
        Ok(Some(b))
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = take(keys[i])?;
        let value = take(values[i])?;
        out.push(tidelog::ProducerRecord {
            topic: topic.to_string(),
            partition: parts.and_then(|p| u32::try_from(p[i]).ok()),
            key,
            value,
            headers: Vec::new(),
            timestamp: times.and_then(|t| t[i].is_finite().then_some(t[i] as i64)),
        });
    }
    Ok(out)
}

/// Metadata of the records of one `send`, all of one topic:
/// `(partition, offset, timestamp)` in order.
pub struct MetadataList {
    pub topic: String,
    pub records: Vec<(u32, i64, i64)>,
}

impl TypeName for MetadataList {
    fn type_name() -> &'static str {
        "Array<RecordMetadata>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for MetadataList {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let k_topic = key(env, "topic")?;
        let k_partition = key(env, "partition")?;
        let k_offset = key(env, "offset")?;
        let k_timestamp = key(env, "timestamp")?;
        let topic = js_string(env, &val.topic)?;
        let mut out = ptr::null_mut();
        check(
            sys::napi_create_array_with_length(env, val.records.len(), &mut out),
            "array",
        )?;
        let mut num = itoa_buf();
        for (i, (partition, offset, timestamp)) in val.records.iter().enumerate() {
            let mut m = ptr::null_mut();
            check(sys::napi_create_object(env, &mut m), "object")?;
            set(env, m, k_topic, topic)?;
            let mut p = ptr::null_mut();
            check(sys::napi_create_uint32(env, *partition, &mut p), "number")?;
            set(env, m, k_partition, p)?;
            set(
                env,
                m,
                k_offset,
                js_string(env, fmt_i64(&mut num, *offset))?,
            )?;
            set(
                env,
                m,
                k_timestamp,
                js_string(env, fmt_i64(&mut num, *timestamp))?,
            )?;
            check(sys::napi_set_element(env, out, i as u32, m), "element")?;
        }
        Ok(out)
    }
}

/// What one `nextBatchPacked` call returns.
pub struct PackedBatches(pub Vec<PartitionRecords>);

impl TypeName for PackedBatches {
    fn type_name() -> &'static str {
        "Array<PackedBatch>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

unsafe fn typed_array<T: Copy>(
    env: sys::napi_env,
    kind: sys::napi_typedarray_type,
    items: &[T],
) -> napi::Result<sys::napi_value> {
    let bytes = std::mem::size_of_val(items);
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    check(
        sys::napi_create_arraybuffer(env, bytes, &mut data, &mut ab),
        "array buffer",
    )?;
    if bytes > 0 && !data.is_null() {
        ptr::copy_nonoverlapping(items.as_ptr() as *const u8, data as *mut u8, bytes);
    }
    let mut out = ptr::null_mut();
    check(
        sys::napi_create_typedarray(env, kind, items.len(), ab, 0, &mut out),
        "typed array",
    )?;
    Ok(out)
}

/// Numbers as a Float64Array when all are exact in a double, else strings.
unsafe fn numbers(env: sys::napi_env, items: &[i64]) -> napi::Result<sys::napi_value> {
    if items.iter().all(|n| n.abs() <= MAX_SAFE) {
        let f: Vec<f64> = items.iter().map(|&n| n as f64).collect();
        return typed_array(env, sys::TypedarrayType::float64_array, &f);
    }
    let mut out = ptr::null_mut();
    check(
        sys::napi_create_array_with_length(env, items.len(), &mut out),
        "array",
    )?;
    let mut num = itoa_buf();
    for (i, n) in items.iter().enumerate() {
        let v = js_string(env, fmt_i64(&mut num, *n))?;
        check(sys::napi_set_element(env, out, i as u32, v), "element")?;
    }
    Ok(out)
}

impl ToNapiValue for PackedBatches {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let k_topic = key(env, "topic")?;
        let k_partition = key(env, "partition")?;
        let k_data = key(env, "data")?;
        let k_keys = key(env, "keyLengths")?;
        let k_values = key(env, "valueLengths")?;
        let k_offsets = key(env, "offsets")?;
        let k_timestamps = key(env, "timestamps")?;
        let k_headers = key(env, "headers")?;
        let mut out = ptr::null_mut();
        check(
            sys::napi_create_array_with_length(env, val.0.len(), &mut out),
            "array",
        )?;
        for (i, batch) in val.0.iter().enumerate() {
            let n = batch.records.len();
            let total: usize = batch
                .records
                .iter()
                .map(|r| {
                    r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len)
                })
                .sum();
            let mut key_lengths = Vec::with_capacity(n);
            let mut value_lengths = Vec::with_capacity(n);
            let mut offsets = Vec::with_capacity(n);
            let mut timestamps = Vec::with_capacity(n);
            let mut data_ptr: *mut c_void = ptr::null_mut();
            let mut data = ptr::null_mut();
            check(
                sys::napi_create_buffer(env, total, &mut data_ptr, &mut data),
                "buffer",
            )?;
            let mut pos = 0usize;
            let mut put = |b: &Option<Bytes>| -> i32 {
                match b {
                    None => -1,
                    Some(b) => {
                        if !b.is_empty() && !data_ptr.is_null() {
                            // SAFETY: `total` counted every key and value.
                            ptr::copy_nonoverlapping(
                                b.as_ptr(),
                                (data_ptr as *mut u8).add(pos),
                                b.len(),
                            );
                        }
                        pos += b.len();
                        b.len() as i32
                    }
                }
            };
            let mut any_headers = false;
            for r in &batch.records {
                key_lengths.push(put(&r.key));
                value_lengths.push(put(&r.value));
                offsets.push(r.offset);
                timestamps.push(r.timestamp);
                any_headers |= !r.headers.is_empty();
            }
            let mut b = ptr::null_mut();
            check(sys::napi_create_object(env, &mut b), "object")?;
            set(env, b, k_topic, js_string(env, &batch.topic)?)?;
            let mut p = ptr::null_mut();
            check(
                sys::napi_create_uint32(env, batch.partition, &mut p),
                "number",
            )?;
            set(env, b, k_partition, p)?;
            set(env, b, k_data, data)?;
            set(
                env,
                b,
                k_keys,
                typed_array(env, sys::TypedarrayType::int32_array, &key_lengths)?,
            )?;
            set(
                env,
                b,
                k_values,
                typed_array(env, sys::TypedarrayType::int32_array, &value_lengths)?,
            )?;
            set(env, b, k_offsets, numbers(env, &offsets)?)?;
            set(env, b, k_timestamps, numbers(env, &timestamps)?)?;
            let mut h = ptr::null_mut();
            if any_headers {
                check(sys::napi_create_array_with_length(env, n, &mut h), "array")?;
                for (j, r) in batch.records.iter().enumerate() {
                    let mut o = ptr::null_mut();
                    if r.headers.is_empty() {
                        check(sys::napi_get_null(env, &mut o), "null")?;
                    } else {
                        check(sys::napi_create_object(env, &mut o), "object")?;
                        for (name, value) in &r.headers {
                            let hk = js_string(env, name)?;
                            set(env, o, hk, js_buffer(env, &Some(value.clone()))?)?;
                        }
                    }
                    check(sys::napi_set_element(env, h, j as u32, o), "element")?;
                }
            } else {
                check(sys::napi_get_null(env, &mut h), "null")?;
            }
            set(env, b, k_headers, h)?;
            check(sys::napi_set_element(env, out, i as u32, b), "element")?;
        }
        Ok(out)
    }
}
