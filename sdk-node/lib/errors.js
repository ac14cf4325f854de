'use strict'

// Error classes. Native errors carry a stable code in their message,
// `[UNKNOWN_TOPIC] ...` (see src/error.rs); `toTidelogError` strips it and
// picks the class. Which codes exist and which are retriable is the Rust
// client's table (`tidelog::ErrorCode`), read from the addon.

const { errorCodes } = require('../native.js')

/** Every client error code, with whether retrying may help. */
const CODES = new Map(errorCodes().map(({ code, retriable }) => [code, retriable]))
/** Codes this package adds for argument checks done in JavaScript or napi. */
const BINDING_CODES = ['INVALID_ARGUMENT', 'NOT_SUBSCRIBED', 'UNKNOWN_ERROR']

class TidelogError extends Error {
  constructor(message, code = 'UNKNOWN_ERROR', options) {
    super(message, options)
    this.name = this.constructor.name
    /** Stable error code, e.g. `UNKNOWN_TOPIC`. */
    this.code = code
    /** Whether the same call may succeed later. (The client already retried.) */
    this.retriable = CODES.get(code) === true
  }
}

class InvalidArgumentError extends TidelogError {
  constructor(message, code = 'INVALID_ARGUMENT', options) {
    super(message, code, options)
  }
}
class ConnectionError extends TidelogError {}
class UnknownTopicError extends TidelogError {}
class TopicAlreadyExistsError extends TidelogError {}
class InvalidTopicNameError extends TidelogError {}
class InvalidConfigError extends TidelogError {}
class RecordTooLargeError extends TidelogError {}
class OffsetOutOfRangeError extends TidelogError {}
class ProducerError extends TidelogError {}
class GroupError extends TidelogError {}
class ClosedError extends TidelogError {}

const CLASSES = {
  INVALID_ARGUMENT: InvalidArgumentError,
  INVALID_REQUEST: InvalidArgumentError,
  NOT_SUBSCRIBED: InvalidArgumentError,
  CONNECTION_ERROR: ConnectionError,
  UNAVAILABLE: ConnectionError,
  TIMEOUT: ConnectionError,
  NOT_LEADER: ConnectionError,
  UNKNOWN_TOPIC: UnknownTopicError,
  UNKNOWN_PARTITION: UnknownTopicError,
  TOPIC_ALREADY_EXISTS: TopicAlreadyExistsError,
  INVALID_TOPIC_NAME: InvalidTopicNameError,
  INVALID_CONFIG: InvalidConfigError,
  RECORD_TOO_LARGE: RecordTooLargeError,
  OFFSET_OUT_OF_RANGE: OffsetOutOfRangeError,
  CORRUPT_BATCH: ProducerError,
  OUT_OF_ORDER_SEQUENCE: ProducerError,
  DUPLICATE_SEQUENCE_NUMBER: ProducerError,
  PRODUCER_FENCED: ProducerError,
  UNKNOWN_GROUP: GroupError,
  UNKNOWN_MEMBER: GroupError,
  FENCED_MEMBER_EPOCH: GroupError,
  NOT_ASSIGNED: GroupError,
  GROUP_NOT_EMPTY: GroupError,
  INVALID_GROUP_ID: GroupError,
  CLOSED: ClosedError,
}

const CODE = /^\[([A-Z_]+)\] ?/

function toTidelogError(e) {
  if (e instanceof TidelogError) return e
  const message = e && typeof e.message === 'string' ? e.message : String(e)
  const m = CODE.exec(message)
  if (!m) {
    // A napi argument conversion error (wrong type) or a bug.
    const code = e && e.code === 'InvalidArg' ? 'INVALID_ARGUMENT' : 'UNKNOWN_ERROR'
    const Cls = CLASSES[code] || TidelogError
    return new Cls(message, code, { cause: e })
  }
  const code = m[1]
  const Cls = CLASSES[code] || TidelogError
  return new Cls(message.slice(m[0].length), code, { cause: e })
}

module.exports = {
  TidelogError,
  InvalidArgumentError,
  ConnectionError,
  UnknownTopicError,
  TopicAlreadyExistsError,
  InvalidTopicNameError,
  InvalidConfigError,
  RecordTooLargeError,
  OffsetOutOfRangeError,
  ProducerError,
  GroupError,
  ClosedError,
  toTidelogError,
  CODES,
  BINDING_CODES,
  CLASSES,
}
