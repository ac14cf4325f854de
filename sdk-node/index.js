'use strict'

// The public API: thin JavaScript idioms (kafkajs-style objects, run loops,
// async iteration, error classes) over the native classes in `native.js`.
// All client logic (batching, retries, fetching, groups) is in Rust.

const { EventEmitter } = require('node:events')
const native = loadNative()
const errors = require('./lib/errors.js')

const { toTidelogError } = errors

function loadNative() {
  try {
    return require('./native.js')
  } catch (e) {
    e.message +=
      `\n\ntidelog: the native addon is not built. Build it with \`npm install && npm run build\` in ${__dirname}` +
      ' (needs a Rust toolchain), or allow this package\'s install script (npm >= 11:' +
      ' `npm install-scripts approve tidelog`, then `npm rebuild tidelog`).'
    throw e
  }
}

/** Runs a native call and converts its failure to a TidelogError. */
function call(fn) {
  let p
  try {
    p = fn()
  } catch (e) {
    return Promise.reject(toTidelogError(e))
  }
  return p.then(undefined, (e) => {
    throw toTidelogError(e)
  })
}

function offsetString(v, what) {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return String(v)
  throw new errors.InvalidArgumentError(`${what} must be a string, number or bigint`)
}

function timestampNumber(v) {
  if (v === undefined || v === null) return undefined
  if (v instanceof Date) return v.getTime()
  return Number(v)
}

/**
 * Packs plain messages (Buffer/string/null keys and values, no headers) into
 * one Buffer plus length columns, so the native side reads one buffer
 * instead of every message's properties. `null` means "use the generic path".
 */
function pack(messages) {
  if (!Array.isArray(messages) || messages.length < 8) return null
  const n = messages.length
  const keys = new Int32Array(n)
  const values = new Int32Array(n)
  let partitions = null
  let timestamps = null
  const chunks = []
  let total = 0
  for (let i = 0; i < n; i++) {
    const m = messages[i]
    if (m === null || typeof m !== 'object') return null
    const h = m.headers
    if (h !== undefined && h !== null) {
      for (const _ in h) return null
    }
    let k = m.key
    if (k === undefined || k === null) keys[i] = -1
    else {
      if (typeof k === 'string') k = Buffer.from(k)
      else if (!(k instanceof Uint8Array)) return null
      keys[i] = k.length
      chunks.push(k)
      total += k.length
    }
    let v = m.value
    if (v === undefined || v === null) values[i] = -1
    else {
      if (typeof v === 'string') v = Buffer.from(v)
      else if (!(v instanceof Uint8Array)) return null
      values[i] = v.length
      chunks.push(v)
      total += v.length
    }
    const p = m.partition
    if (p !== undefined && p !== null) {
      if (!Number.isInteger(p) || p < 0 || p > 0x7fffffff) return null
      if (!partitions) partitions = new Int32Array(n).fill(-1)
      partitions[i] = p
    }
    const t = m.timestamp
    if (t !== undefined && t !== null) {
      if (typeof t !== 'number' || !Number.isSafeInteger(t)) return null
      if (!timestamps) timestamps = new Float64Array(n).fill(NaN)
      timestamps[i] = t
    }
  }
  return { data: Buffer.concat(chunks, total), keys, values, partitions, timestamps }
}

/**
 * Builds message objects from the columns of `nextBatchPacked`. Keys and
 * values are views into one Buffer per partition batch (no copy each).
 */
function unpack(b) {
  const { data, keyLengths, valueLengths, offsets, timestamps, headers } = b
  const n = valueLengths.length
  const messages = new Array(n)
  let pos = 0
  for (let i = 0; i < n; i++) {
    const kl = keyLengths[i]
    let key = null
    if (kl >= 0) {
      key = data.subarray(pos, pos + kl)
      pos += kl
    }
    const vl = valueLengths[i]
    let value = null
    if (vl >= 0) {
      value = data.subarray(pos, pos + vl)
      pos += vl
    }
    messages[i] = {
      key,
      value,
      headers: (headers !== null && headers[i]) || {},
      offset: String(offsets[i]),
      timestamp: String(timestamps[i]),
    }
  }
  return { topic: b.topic, partition: b.partition, messages }
}

async function fetchBatches(n, max) {
  const packed = await call(() => n.nextBatchPacked(max))
  return packed.map(unpack)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class Tidelog {
  /**
   * @param {{ brokers: string[] | string, clientId?: string,
   *           connectionTimeout?: number, requestTimeout?: number }} options
   */
  constructor(options = {}) {
    const brokers = typeof options.brokers === 'string' ? [options.brokers] : options.brokers
    try {
      this._native = new native.Tidelog({ ...options, brokers: brokers || [] })
    } catch (e) {
      throw toTidelogError(e)
    }
  }

  producer(options) {
    try {
      return new Producer(this._native.producer(options))
    } catch (e) {
      throw toTidelogError(e)
    }
  }

  consumer(options) {
    try {
      return new Consumer(this._native.consumer(options))
    } catch (e) {
      throw toTidelogError(e)
    }
  }

  admin() {
    return new Admin(this._native.admin())
  }
}

class Producer {
  constructor(n) {
    this._n = n
  }

  connect() {
    return call(() => this._n.connect())
  }

  /** Resolves to one `RecordMetadata` per message, in order. */
  send({ topic, messages }) {
    const packed = pack(messages)
    if (packed) {
      const { data, keys, values, partitions, timestamps } = packed
      return call(() => this._n.sendPacked(topic, data, keys, values, partitions, timestamps))
    }
    return call(() => this._n.send(topic, messages))
  }

  /** Several topics at once; resolves to all metadata, in order. */
  async sendBatch({ topicMessages }) {
    const all = await Promise.all(topicMessages.map((tm) => this.send(tm)))
    return all.flat()
  }

  flush() {
    return call(() => this._n.flush())
  }

  disconnect() {
    return call(() => this._n.disconnect())
  }
}

class Consumer extends EventEmitter {
  constructor(n) {
    super()
    this._n = n
    this._loop = null
    this._stopping = false
    this._running = false
  }

  get groupId() {
    return this._n.groupId
  }

  /** Nothing to do: joining happens in `subscribe`. For kafkajs symmetry. */
  async connect() {}

  subscribe({ topics, topic, fromBeginning = false }) {
    const list = topics ? [...topics] : []
    if (topic) list.push(topic)
    return call(() => this._n.subscribe(list, fromBeginning))
  }

  /**
   * Starts the processing loop and resolves once it runs (as kafkajs does).
   * Exactly one of `eachMessage` / `eachBatch`. A handler that throws has
   * its partition rewound to the failed (unresolved) record, emits
   * `'crash'`, and the loop retries after `retryDelayMs` (default 1000),
   * unless `restartOnFailure` is false, in which case it stops.
   */
  async run({
    eachMessage,
    eachBatch,
    eachBatchAutoResolve = true,
    maxBatchSize = 2000,
    restartOnFailure = true,
    retryDelayMs = 1000,
  } = {}) {
    if (!eachMessage === !eachBatch) {
      throw new errors.InvalidArgumentError('run needs exactly one of eachMessage or eachBatch')
    }
    if (this._running) throw new errors.InvalidArgumentError('the consumer is already running')
    this._running = true
    this._stopping = false
    const opts = { eachMessage, eachBatch, eachBatchAutoResolve, maxBatchSize, restartOnFailure, retryDelayMs }
    this._loop = this._runLoop(opts).finally(() => {
      this._running = false
    })
    this._loop.catch((e) => {
      if (this.listenerCount('crash') > 0) this.emit('crash', e)
      else process.emitWarning(`tidelog consumer stopped: ${e && e.message}`)
    })
  }

  /**
   * Reads `offset` of the batch's partition again, with everything the
   * last fetch handed out after it (the Rust consumer tracks which).
   */
  _redeliver(b, offset) {
    return call(() => this._n.redeliverFrom(b.topic, b.partition, offset))
  }

  async _runLoop(opts) {
    const { eachMessage, eachBatch, eachBatchAutoResolve, maxBatchSize } = opts
    const isRunning = () => this._running && !this._stopping
    const heartbeat = async () => {}
    while (!this._stopping) {
      const batches = await fetchBatches(this._n, maxBatchSize)
      let failure = null
      for (let i = 0; i < batches.length && !failure; i++) {
        const b = batches[i]
        if (this._stopping) {
          await this._redeliver(b, b.messages[0].offset)
          break
        }
        if (eachBatch) {
          let resolved
          const msgs = b.messages
          const batch = {
            topic: b.topic,
            partition: b.partition,
            messages: msgs,
            isEmpty: () => msgs.length === 0,
            firstOffset: () => (msgs.length ? msgs[0].offset : null),
            lastOffset: () => (msgs.length ? msgs[msgs.length - 1].offset : null),
          }
          try {
            await eachBatch({
              batch,
              resolveOffset: (o) => {
                resolved = String(o)
              },
              heartbeat,
              commitOffsetsIfNecessary: async () => {},
              isRunning,
              isStale: () => false,
            })
            if (!eachBatchAutoResolve) {
              const next = resolved === undefined ? msgs[0].offset : (BigInt(resolved) + 1n).toString()
              if (BigInt(next) <= BigInt(batch.lastOffset())) {
                // Unresolved records are read again.
                await this._redeliver(b, next)
                break
              }
            }
          } catch (e) {
            const next = resolved === undefined ? msgs[0].offset : (BigInt(resolved) + 1n).toString()
            await this._redeliver(b, next)
            failure = e
          }
        } else {
          const msgs = b.messages
          for (let j = 0; j < msgs.length; j++) {
            if (this._stopping) {
              await this._redeliver(b, msgs[j].offset)
              failure = 'stopped'
              break
            }
            try {
              await eachMessage({ topic: b.topic, partition: b.partition, message: msgs[j], heartbeat })
            } catch (e) {
              await this._redeliver(b, msgs[j].offset)
              failure = e
              break
            }
          }
        }
      }
      if (failure === 'stopped') break
      if (failure) {
        if (!opts.restartOnFailure) throw failure
        if (this.listenerCount('crash') > 0) this.emit('crash', failure)
        await sleep(opts.retryDelayMs)
      }
    }
  }

  /** Stops `run` after the current message (or batch); does not leave. */
  async stop() {
    if (!this._loop) return
    this._stopping = true
    await call(() => this._n.wakeup())
    await this._loop.catch(() => {})
    this._loop = null
  }

  /**
   * `for await (const { topic, partition, message } of consumer)`.
   * Leaving the loop early rewinds records fetched but not yet yielded.
   */
  async *[Symbol.asyncIterator]() {
    return yield* this.messages()
  }

  async *messages({ maxBatchSize = 2000 } = {}) {
    let batches = []
    let i = 0
    let j = 0
    try {
      while (!this._stopping) {
        batches = await fetchBatches(this._n, maxBatchSize)
        for (i = 0; i < batches.length; i++) {
          const b = batches[i]
          for (j = 0; j < b.messages.length; j++) {
            yield { topic: b.topic, partition: b.partition, message: b.messages[j] }
          }
        }
        batches = []
      }
    } finally {
      if (i < batches.length && !this._closed) {
        // Stopped inside a batch: the current record counts as consumed.
        const b = batches[i]
        if (j + 1 < b.messages.length) {
          await this._redeliver(b, b.messages[j + 1].offset)
        } else if (i + 1 < batches.length) {
          const nb = batches[i + 1]
          await this._redeliver(nb, nb.messages[0].offset)
        }
      }
    }
  }

  /**
   * `seek({ topic, partition, offset })`, `seek({ topic, partition, timestamp })`
   * or `seek({ topic, to: 'beginning' | 'end' })`; without `partition`, every
   * assigned partition of the topic moves. Resolves to the new offsets.
   * During `run`, it takes effect from the next fetched batch.
   */
  seek({ topic, partition, offset, timestamp, to }) {
    return call(() =>
      this._n.seek({
        topic,
        partition,
        offset: offsetString(offset, 'offset'),
        timestamp: timestampNumber(timestamp),
        to,
      }),
    )
  }

  /** Commits the given offsets (next offset to read), or all positions. */
  commitOffsets(offsets) {
    const list = offsets
      ? offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: offsetString(o.offset, 'offset') }))
      : undefined
    return call(() => this._n.commitOffsets(list))
  }

  assignment() {
    return call(() => this._n.assignment())
  }

  positions() {
    return call(() => this._n.positions())
  }

  lag() {
    return call(() => this._n.lag())
  }

  takeRebalanceEvents() {
    return call(() => this._n.takeEvents())
  }

  /** Stops `run`, commits (with auto-commit) and leaves the group. */
  async disconnect() {
    this._stopping = true
    this._closed = true
    if (this._loop) {
      await call(() => this._n.wakeup())
      await this._loop.catch(() => {})
      this._loop = null
    }
    await call(() => this._n.disconnect())
  }
}

class Admin {
  constructor(n) {
    this._n = n
  }
  connect() {
    return call(() => this._n.connect())
  }
  disconnect() {
    return call(() => this._n.disconnect())
  }
  createTopics({ topics }) {
    return call(() => this._n.createTopics({ topics }))
  }
  listTopics() {
    return call(() => this._n.listTopics())
  }
  describeTopics(arg) {
    const topics = Array.isArray(arg) ? arg : arg.topics
    return call(() => this._n.describeTopics(topics))
  }
  deleteTopics({ topics }) {
    return call(() => this._n.deleteTopics({ topics }))
  }
  alterTopicConfig({ topic, set = {}, remove = [] }) {
    const strings = Object.fromEntries(Object.entries(set).map(([k, v]) => [k, String(v)]))
    return call(() => this._n.alterTopicConfig(topic, strings, remove))
  }
  listGroups() {
    return call(() => this._n.listGroups())
  }
  describeGroups(groupIds) {
    return call(() => this._n.describeGroups(groupIds))
  }
  deleteGroups(groupIds) {
    return call(() => this._n.deleteGroups(groupIds))
  }
  resetOffsets(options) {
    return call(() =>
      this._n.resetOffsets({
        ...options,
        offset: offsetString(options.offset, 'offset'),
        timestamp: timestampNumber(options.timestamp),
      }),
    )
  }
  fetchTopicOffsets(topic) {
    return call(() => this._n.fetchTopicOffsets(topic))
  }
  fetchTopicOffsetsByTimestamp(topic, timestamp) {
    return call(() => this._n.fetchTopicOffsetsByTimestamp(topic, timestampNumber(timestamp)))
  }
}

// The code table and class map stay internal (tests read lib/errors.js).
const { CODES, BINDING_CODES, CLASSES, ...publicErrors } = errors
module.exports = { Tidelog, Producer, Consumer, Admin, ...publicErrors }
