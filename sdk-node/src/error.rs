//! Client errors become JavaScript errors whose message starts with the
//! error's stable code in brackets, `[UNKNOWN_TOPIC] ...`; `lib/errors.js`
//! turns that into the matching `TidelogError` subclass. The codes and
//! whether each is retriable come from `tidelog::ErrorCode`, exported to
//! JavaScript by `errorCodes()`.

use napi::Status;
use napi_derive::napi;

/// A client error code and whether retrying may help.
#[napi(object)]
pub struct ErrorCodeInfo {
    pub code: String,
    pub retriable: bool,
}

/// Every code a client error can carry (`lib/errors.js` reads it).
#[napi]
pub fn error_codes() -> Vec<ErrorCodeInfo> {
    tidelog::ErrorCode::ALL
        .iter()
        .map(|c| ErrorCodeInfo {
            code: c.as_str().to_string(),
            retriable: c.is_retriable(),
        })
        .collect()
}

/// A client error as a JavaScript error.
pub(crate) fn to_napi(e: tidelog::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {e}", e.code()))
}

/// A bad argument from the caller.
pub(crate) fn invalid(msg: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::InvalidArg, format!("[INVALID_ARGUMENT] {msg}"))
}

/// Use of a producer or consumer after `disconnect()`.
pub(crate) fn closed(what: &str) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("[CLOSED] the {what} is disconnected"),
    )
}
