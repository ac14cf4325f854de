'use strict'

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')

const {
  Tidelog,
  TidelogError,
  UnknownTopicError,
  RecordTooLargeError,
  InvalidTopicNameError,
  TopicAlreadyExistsError,
  InvalidArgumentError,
} = require('..')
const { startBroker, freePort } = require('./broker.js')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function until(cond, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

describe('tidelog against a real broker', { timeout: 180000 }, () => {
  let broker
  let tidelog
  let admin
  let producer

  before(async () => {
    broker = await startBroker()
    tidelog = new Tidelog({ brokers: [broker.address], clientId: 'node-test' })
    admin = tidelog.admin()
    producer = tidelog.producer({ lingerMs: 2 })
    await producer.connect()
  })

  after(async () => {
    if (producer) await producer.disconnect().catch(() => {})
    if (broker) await broker.stop()
  })

  it('round-trips keys, values, headers, partitions and timestamps', async () => {
    await admin.createTopics({ topics: [{ topic: 'roundtrip', numPartitions: 3 }] })
    const messages = []
    for (let i = 0; i < 20; i++) {
      messages.push({
        key: i % 2 ? `user-${i % 4}` : Buffer.from([0, 1, i]),
        value: Buffer.from(`value-${i}`),
        headers: { source: 'test', idx: Buffer.from(String(i)) },
        timestamp: 1_700_000_000_000 + i,
      })
    }
    messages.push({ value: 'pinned', partition: 2, headers: {} })
    messages.push({ key: 'tomb', value: null })
    const meta = await producer.send({ topic: 'roundtrip', messages })
    assert.equal(meta.length, messages.length)
    for (const m of meta) {
      assert.equal(m.topic, 'roundtrip')
      assert.equal(typeof m.offset, 'string')
      assert.equal(typeof m.timestamp, 'string')
    }
    assert.equal(meta[20].partition, 2)
    assert.equal(meta[0].timestamp, '1700000000000')
    // Same key, same partition.
    assert.equal(meta[1].partition, meta[5].partition)

    const consumer = tidelog.consumer()
    await consumer.subscribe({ topics: ['roundtrip'], fromBeginning: true })
    const got = []
    for await (const { topic, partition, message } of consumer) {
      got.push({ topic, partition, message })
      if (got.length === messages.length) break
    }
    await consumer.disconnect()
    const byValue = new Map(got.map((g) => [g.message.value ? g.message.value.toString() : 'tombstone', g]))
    for (let i = 0; i < 20; i++) {
      const g = byValue.get(`value-${i}`)
      assert.ok(g, `value-${i} consumed`)
      assert.equal(g.topic, 'roundtrip')
      assert.equal(g.partition, meta[i].partition)
      assert.equal(g.message.offset, meta[i].offset)
      assert.equal(g.message.timestamp, String(1_700_000_000_000 + i))
      assert.ok(Buffer.isBuffer(g.message.key))
      const key = i % 2 ? Buffer.from(`user-${i % 4}`) : Buffer.from([0, 1, i])
      assert.deepEqual(g.message.key, key)
      assert.ok(Buffer.isBuffer(g.message.value))
      assert.deepEqual(g.message.headers.source, Buffer.from('test'))
      assert.deepEqual(g.message.headers.idx, Buffer.from(String(i)))
    }
    assert.equal(byValue.get('pinned').partition, 2)
    assert.equal(byValue.get('pinned').message.key, null)
    const tomb = byValue.get('tombstone')
    assert.equal(tomb.message.value, null)
    assert.deepEqual(tomb.message.key, Buffer.from('tomb'))
  })

  it('round-trips plain messages through the packed send path', async () => {
    await admin.createTopics({ topics: [{ topic: 'packed', numPartitions: 2 }] })
    const messages = Array.from({ length: 40 }, (_, i) => {
      const m = { value: i % 5 === 0 ? null : Buffer.from(`p${i}`) }
      if (i % 2) m.key = `k${i}`
      if (i % 3 === 0) m.partition = 1
      if (i % 4 === 0) m.timestamp = 1_600_000_000_000 + i
      if (i === 7) m.headers = {}
      return m
    })
    const meta = await producer.send({ topic: 'packed', messages })
    assert.equal(meta.length, 40)
    const consumer = tidelog.consumer()
    await consumer.subscribe({ topics: ['packed'], fromBeginning: true })
    const got = new Map()
    for await (const { partition, message } of consumer) {
      got.set(`${partition}:${message.offset}`, message)
      if (got.size === 40) break
    }
    await consumer.disconnect()
    messages.forEach((m, i) => {
      const g = got.get(`${meta[i].partition}:${meta[i].offset}`)
      assert.ok(g, `message ${i} consumed`)
      if (m.partition !== undefined) assert.equal(meta[i].partition, 1)
      if (m.timestamp !== undefined) assert.equal(g.timestamp, String(m.timestamp))
      assert.deepEqual(g.key, m.key === undefined ? null : Buffer.from(m.key))
      assert.deepEqual(g.value, m.value)
    })
  })

  it('delivers batches to eachBatch and commits them for the group', async () => {
    await admin.createTopics({ topics: [{ topic: 'batches', numPartitions: 2 }] })
    const total = 500
    const messages = Array.from({ length: total }, (_, i) => ({ key: `k${i}`, value: `v${i}` }))
    await producer.send({ topic: 'batches', messages })

    const consumer = tidelog.consumer({ groupId: 'batch-group' })
    await consumer.subscribe({ topics: ['batches'], fromBeginning: true })
    const seen = new Set()
    let batches = 0
    await consumer.run({
      eachBatch: async ({ batch, resolveOffset, isRunning }) => {
        assert.equal(batch.topic, 'batches')
        assert.ok(isRunning())
        batches++
        let last = -1n
        for (const m of batch.messages) {
          assert.ok(BigInt(m.offset) > last, 'offsets increase within a batch')
          last = BigInt(m.offset)
          seen.add(`${batch.partition}:${m.offset}`)
          resolveOffset(m.offset)
        }
        assert.equal(batch.lastOffset(), batch.messages[batch.messages.length - 1].offset)
      },
    })
    await until(() => seen.size === total, 'all records in eachBatch')
    assert.ok(batches >= 2, 'records arrive from both partitions as batches')
    await consumer.disconnect()

    const [group] = await admin.describeGroups(['batch-group'])
    const committed = group.partitions.reduce((s, p) => s + Number(p.committedOffset), 0)
    assert.equal(committed, total)
    assert.ok(group.partitions.every((p) => p.lag === '0'))
  })

  it('splits partitions between two group members, each record once', async () => {
    await admin.createTopics({ topics: [{ topic: 'shared', numPartitions: 4 }] })
    const c1 = tidelog.consumer({ groupId: 'pair', autoCommitInterval: 200 })
    const c2 = tidelog.consumer({ groupId: 'pair', autoCommitInterval: 200 })
    const seen = [new Map(), new Map()]
    const handler = (idx) => async ({ partition, message }) => {
      const id = message.value.toString()
      seen[idx].set(id, (seen[idx].get(id) || 0) + 1)
      assert.ok(partition >= 0 && partition < 4)
    }
    await c1.subscribe({ topics: ['shared'], fromBeginning: true })
    await c1.run({ eachMessage: handler(0) })
    await c2.subscribe({ topics: ['shared'], fromBeginning: true })
    await c2.run({ eachMessage: handler(1) })
    await until(async () => {
      const [a1, a2] = await Promise.all([c1.assignment(), c2.assignment()])
      return a1.length === 2 && a2.length === 2
    }, 'a 2+2 split of the partitions')
    const [a1, a2] = await Promise.all([c1.assignment(), c2.assignment()])
    const owned = [...a1, ...a2].map((tp) => tp.partition).sort()
    assert.deepEqual(owned, [0, 1, 2, 3])

    const total = 2000
    const messages = Array.from({ length: total }, (_, i) => ({ key: `key-${i}`, value: `m${i}` }))
    await producer.send({ topic: 'shared', messages })
    await until(() => seen[0].size + seen[1].size >= total, 'every record consumed')
    await sleep(300)
    assert.ok(seen[0].size > 0 && seen[1].size > 0, 'both members consumed')
    for (let i = 0; i < total; i++) {
      const n = (seen[0].get(`m${i}`) || 0) + (seen[1].get(`m${i}`) || 0)
      assert.equal(n, 1, `m${i} consumed exactly once`)
    }
    await Promise.all([c1.disconnect(), c2.disconnect()])
    const { groups } = await admin.listGroups()
    const pair = groups.find((g) => g.groupId === 'pair')
    assert.ok(pair)
    assert.equal(pair.members, 0)
  })

  it('rewinds by timestamp: consumer seek and group offset reset', async () => {
    await admin.createTopics({ topics: [{ topic: 'timeline', numPartitions: 1 }] })
    const old = Array.from({ length: 5 }, (_, i) => ({ value: `old-${i}`, timestamp: 1_000_000 + i }))
    const recent = Array.from({ length: 5 }, (_, i) => ({ value: `new-${i}`, timestamp: 2_000_000 + i }))
    await producer.send({ topic: 'timeline', messages: old })
    await producer.send({ topic: 'timeline', messages: recent })

    const byTime = await admin.fetchTopicOffsetsByTimestamp('timeline', 2_000_000)
    assert.deepEqual(byTime, [{ partition: 0, offset: '5' }])

    const consumer = tidelog.consumer()
    await consumer.subscribe({ topics: ['timeline'], fromBeginning: true })
    const first = []
    for await (const { message } of consumer) {
      first.push(message.value.toString())
      if (first.length === 10) break
    }
    assert.equal(first[0], 'old-0')
    const moved = await consumer.seek({ topic: 'timeline', partition: 0, timestamp: 2_000_002 })
    assert.deepEqual(moved, [{ topic: 'timeline', partition: 0, offset: '7' }])
    const again = []
    for await (const { message } of consumer) {
      again.push(message.value.toString())
      if (again.length === 3) break
    }
    assert.deepEqual(again, ['new-2', 'new-3', 'new-4'])
    // Seek to an offset and to the beginning, for the whole topic.
    await consumer.seek({ topic: 'timeline', offset: 4 })
    const [one] = (await consumer._n.nextBatch(1))[0].messages
    assert.equal(one.value.toString(), 'old-4')
    await consumer.seek({ topic: 'timeline', to: 'beginning' })
    const [zero] = (await consumer._n.nextBatch(1))[0].messages
    assert.equal(zero.offset, '0')
    await consumer.disconnect()

    // A group consumes everything, then its offsets are rewound by time.
    const g1 = tidelog.consumer({ groupId: 'timeline-group' })
    await g1.subscribe({ topics: ['timeline'], fromBeginning: true })
    let n = 0
    for await (const _ of g1) {
      if (++n === 10) break
    }
    await g1.disconnect()
    const plan = await admin.resetOffsets({ groupId: 'timeline-group', topic: 'timeline', timestamp: 2_000_003 })
    assert.deepEqual(plan, [{ topic: 'timeline', partition: 0, oldOffset: '10', newOffset: '8' }])
    const g2 = tidelog.consumer({ groupId: 'timeline-group' })
    await g2.subscribe({ topics: ['timeline'] })
    const replay = []
    for await (const { message } of g2) {
      replay.push(message.value.toString())
      if (replay.length === 2) break
    }
    assert.deepEqual(replay, ['new-3', 'new-4'])
    await g2.disconnect()
    const earliest = await admin.resetOffsets({ groupId: 'timeline-group', topic: 'timeline', earliest: true, dryRun: true })
    assert.equal(earliest[0].newOffset, '0')
  })

  it('reports errors as TidelogError subclasses with codes', async () => {
    await assert.rejects(
      producer.send({ topic: 'no-such-topic', messages: [{ value: 'x' }] }),
      (e) => e instanceof UnknownTopicError && e instanceof TidelogError && e.code === 'UNKNOWN_TOPIC',
    )

    await admin.createTopics({
      topics: [{ topic: 'small', numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '1024' }] }],
    })
    await assert.rejects(
      producer.send({ topic: 'small', messages: [{ value: Buffer.alloc(4096, 1) }] }),
      (e) => e instanceof RecordTooLargeError && e.code === 'RECORD_TOO_LARGE' && !e.retriable,
    )
    // Small records still go through.
    const [ok] = await producer.send({ topic: 'small', messages: [{ value: 'fits' }] })
    assert.equal(ok.offset, '0')

    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'bad name!', numPartitions: 1 }] }),
      (e) => e instanceof InvalidTopicNameError && e.code === 'INVALID_TOPIC_NAME',
    )
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'small' }] }),
      (e) => e instanceof TopicAlreadyExistsError && e.code === 'TOPIC_ALREADY_EXISTS',
    )
    await assert.rejects(
      producer.send({ topic: 'small', messages: [{ value: 42 }] }),
      (e) => e instanceof InvalidArgumentError && e.code === 'INVALID_ARGUMENT',
    )
    const c = tidelog.consumer()
    await assert.rejects(
      c.subscribe({ topics: ['no-such-topic'] }),
      (e) => e instanceof UnknownTopicError,
    )
    await assert.rejects(
      admin.describeGroups(['never-existed']),
      (e) => e instanceof TidelogError && e.code === 'UNKNOWN_GROUP',
    )
  })

  it('administers topics and groups', async () => {
    await admin.createTopics({
      topics: [{ topic: 'adm', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '60000' }] }],
    })
    assert.ok((await admin.listTopics()).includes('adm'))
    const [d] = await admin.describeTopics({ topics: ['adm'] })
    assert.equal(d.name, 'adm')
    assert.equal(d.partitions.length, 2)
    assert.equal(d.config['retention.ms'], '60000')
    await admin.alterTopicConfig({ topic: 'adm', set: { 'retention.ms': 120000 } })
    const [d2] = await admin.describeTopics(['adm'])
    assert.equal(d2.config['retention.ms'], '120000')

    await producer.send({ topic: 'adm', messages: [{ value: 'a', partition: 0 }, { value: 'b', partition: 1 }] })
    const offsets = await admin.fetchTopicOffsets('adm')
    assert.deepEqual(offsets.map((o) => o.high), ['1', '1'])

    const g = tidelog.consumer({ groupId: 'adm-group' })
    await g.subscribe({ topics: ['adm'], fromBeginning: true })
    let n = 0
    for await (const _ of g) {
      if (++n === 2) break
    }
    await g.commitOffsets([{ topic: 'adm', partition: 0, offset: '1' }])
    const [desc] = await admin.describeGroups(['adm-group'])
    assert.equal(desc.members.length, 1)
    await assert.rejects(admin.deleteGroups(['adm-group']), (e) => e.code === 'GROUP_NOT_EMPTY')
    await g.disconnect()
    await admin.deleteGroups(['adm-group'])
    const { groups } = await admin.listGroups()
    assert.ok(!groups.some((x) => x.groupId === 'adm-group'))

    await admin.deleteTopics({ topics: ['adm'] })
    assert.ok(!(await admin.listTopics()).includes('adm'))
  })

  it('bootstraps from the first reachable broker of a list', async () => {
    // Nothing listens on a port just freed: the client skips it.
    const dead = `127.0.0.1:${await freePort()}`
    const listed = new Tidelog({ brokers: [dead, broker.address], clientId: 'node-list' })
    const listAdmin = listed.admin()
    await listAdmin.createTopics({ topics: [{ topic: 'bootlist', numPartitions: 2 }] })
    const p = listed.producer({ lingerMs: 1 })
    await p.connect()
    const meta = await p.send({ topic: 'bootlist', messages: [{ value: 'one', partition: 1 }] })
    assert.equal(meta[0].partition, 1)
    await p.disconnect()
    const c = listed.consumer()
    await c.subscribe({ topics: ['bootlist'], fromBeginning: true })
    for await (const { partition, message } of c) {
      assert.equal(partition, 1)
      assert.equal(message.value.toString(), 'one')
      break
    }
    await c.disconnect()
    await assert.rejects(
      new Tidelog({ brokers: [dead] }).admin().listTopics(),
      (e) => e instanceof TidelogError && e.code === 'CONNECTION_ERROR' && e.message.includes(dead),
    )
  })
})
