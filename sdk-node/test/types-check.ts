// Compiled (not run) by `npm run typecheck`: the public API must type-check.
import { Tidelog, TidelogError, UnknownTopicError, RecordMetadata, KafkaMessage } from '..'

async function main(): Promise<void> {
  const t = new Tidelog({ brokers: ['127.0.0.1:7070'], clientId: 'x' })
  const admin = t.admin()
  await admin.createTopics({ topics: [{ topic: 'a', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '1' }] }] })
  const p = t.producer({ lingerMs: 5, compression: 'lz4', acks: 'all' })
  const meta: RecordMetadata[] = await p.send({ topic: 'a', messages: [{ key: 'k', value: Buffer.from('v'), headers: { h: 'x' }, partition: 0, timestamp: Date.now() }] })
  const off: string = meta[0].offset
  const c = t.consumer({ groupId: 'g' })
  await c.subscribe({ topics: ['a'], fromBeginning: true })
  await c.run({ eachMessage: async ({ topic, partition, message }) => { const v: Buffer | null = message.value; console.log(topic, partition, v, message.offset) } })
  await c.run({ eachBatch: async ({ batch, resolveOffset }) => { for (const m of batch.messages) resolveOffset(m.offset) } })
  for await (const { message } of c) { const m: KafkaMessage = message; console.log(m.timestamp) }
  await c.seek({ topic: 'a', partition: 0, offset: 5n })
  await c.seek({ topic: 'a', timestamp: new Date() })
  await c.commitOffsets([{ topic: 'a', partition: 0, offset: '3' }])
  const plan = await admin.resetOffsets({ groupId: 'g', topic: 'a', timestamp: Date.now(), dryRun: true })
  console.log(plan[0].newOffset, off)
  const { groups } = await admin.listGroups()
  console.log(groups[0].groupId)
  try { await p.flush() } catch (e) { if (e instanceof UnknownTopicError) console.log(e.code) ; if (e instanceof TidelogError) console.log(e.retriable) }
}
main()
