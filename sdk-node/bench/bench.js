'use strict'

// Throughput of the Node producer and consumer with 1 KiB values.
//
//   node bench/bench.js [--records N] [--partitions P] [--chunk C] [--inflight F]
//                       [--max-in-flight M]   (producer requests per partition)
//
// Starts its own broker (TIDELOG_BIN, else <repo>/target/release/tidelog,
// else target/debug/tidelog) unless TIDELOG_BROKER=host:port is set.

const path = require('node:path')
const fs = require('node:fs')
const { Tidelog } = require('..')
const { startBroker } = require('../test/broker.js')

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}

const RECORDS = arg('records', 500000)
const PARTITIONS = arg('partitions', 4)
const CHUNK = arg('chunk', 1000)
const INFLIGHT = arg('inflight', 32)
const MAX_IN_FLIGHT = arg('max-in-flight', undefined)
const VALUE = Buffer.alloc(1024, 'x')

async function main() {
  let broker = null
  let address = process.env.TIDELOG_BROKER
  if (!address) {
    if (!process.env.TIDELOG_BIN) {
      const release = path.resolve(__dirname, '..', '..', 'target', 'release', 'tidelog')
      if (fs.existsSync(release)) process.env.TIDELOG_BIN = release
    }
    broker = await startBroker()
    address = broker.address
  }
  console.log(`broker ${address} (${process.env.TIDELOG_BIN || 'debug build'}), ${RECORDS} records x 1 KiB, ${PARTITIONS} partitions`)
  const tidelog = new Tidelog({ brokers: [address] })
  const admin = tidelog.admin()
  const topic = `bench-${Date.now()}`
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] })

  // Producer: `send` calls of CHUNK messages, up to INFLIGHT at once.
  const producer = tidelog.producer(MAX_IN_FLIGHT ? { maxInFlight: MAX_IN_FLIGHT } : {})
  await producer.connect()
  let sent = 0
  const t0 = process.hrtime.bigint()
  const inflight = new Set()
  while (sent < RECORDS) {
    const n = Math.min(CHUNK, RECORDS - sent)
    const messages = new Array(n)
    for (let i = 0; i < n; i++) messages[i] = { key: null, value: VALUE }
    sent += n
    const p = producer.send({ topic, messages })
    inflight.add(p)
    p.finally(() => inflight.delete(p))
    if (inflight.size >= INFLIGHT) await Promise.race(inflight)
  }
  await Promise.all(inflight)
  await producer.flush()
  const ps = Number(process.hrtime.bigint() - t0) / 1e9
  console.log(`producer: ${RECORDS} records in ${ps.toFixed(2)} s = ${Math.round(RECORDS / ps)} records/s (${((RECORDS * 1024) / ps / 2 ** 20).toFixed(0)} MiB/s)`)
  await producer.disconnect()

  for (const mode of ['eachBatch', 'eachMessage', 'asyncIterator']) {
    const consumer = tidelog.consumer()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    let count = 0
    let bytes = 0
    const t1 = process.hrtime.bigint()
    if (mode === 'asyncIterator') {
      for await (const { message } of consumer) {
        bytes += message.value.length
        if (++count === RECORDS) break
      }
    } else {
      await new Promise((resolve, reject) => {
        consumer.on('crash', reject)
        const handler =
          mode === 'eachBatch'
            ? {
                eachBatch: async ({ batch }) => {
                  for (const m of batch.messages) bytes += m.value.length
                  count += batch.messages.length
                  if (count >= RECORDS) resolve()
                },
              }
            : {
                eachMessage: async ({ message }) => {
                  bytes += message.value.length
                  if (++count === RECORDS) resolve()
                },
              }
        consumer.run(handler).catch(reject)
      })
    }
    const cs = Number(process.hrtime.bigint() - t1) / 1e9
    console.log(`consumer (${mode}): ${count} records in ${cs.toFixed(2)} s = ${Math.round(count / cs)} records/s (${(bytes / cs / 2 ** 20).toFixed(0)} MiB/s)`)
    await consumer.disconnect()
  }
  await admin.deleteTopics({ topics: [topic] })
  if (broker) await broker.stop()
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
  // The broker child is killed on exit (test/broker.js).
  process.exit()
})
