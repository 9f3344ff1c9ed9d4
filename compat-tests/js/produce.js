// kafkajs producer driven by compat-tests/test_kafkajs.py.
//
// Env: KFDB_BROKER (host:port), TOPIC, PARTITIONS (default 2), COUNT (default 500),
//      COMPRESSION ("none" | "gzip"), ACKS (default -1), BASE_TS (CreateTime of message 0).
// Creates TOPIC with the kafkajs admin, sends COUNT messages (key, value, headers, timestamp,
// explicit partition = i % PARTITIONS) in batches, then prints one line
//   RESULT {"created":..., "metadata":[...], "offsets":[...]}
// with the send results and admin.fetchTopicOffsets. kafkajs has no group-less consumer, so the
// Python test verifies the messages with confluent-kafka.
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const broker = process.env.KFDB_BROKER
const topic = process.env.TOPIC
const partitions = parseInt(process.env.PARTITIONS || '2', 10)
const count = parseInt(process.env.COUNT || '500', 10)
const acks = parseInt(process.env.ACKS || '-1', 10)
const baseTs = parseInt(process.env.BASE_TS || '1730000000000', 10)
const compression = (process.env.COMPRESSION || 'none') === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None

function message (i) {
  return {
    key: `js-key-${i}`,
    value: Buffer.concat([Buffer.from(`kafkajs value ${i} `.repeat(1 + (i % 4))), Buffer.from([0, i % 256, 255])]),
    headers: { seq: String(i), client: 'kafkajs' },
    timestamp: String(baseTs + 7 * i),
    partition: i % partitions
  }
}

async function main () {
  const kafka = new Kafka({
    clientId: 'kfdb-compat-kafkajs',
    brokers: [broker],
    logLevel: logLevel.WARN,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 5 }
  })
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 30000
  })

  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
  await producer.connect()
  const metadata = []
  const batch = 100
  for (let start = 0; start < count; start += batch) {
    const messages = []
    for (let i = start; i < Math.min(count, start + batch); i++) messages.push(message(i))
    const res = await producer.send({ topic, acks, compression, messages })
    for (const r of res) metadata.push({ partition: r.partition, baseOffset: r.baseOffset, errorCode: r.errorCode })
  }
  await producer.disconnect()

  const offsets = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  process.stdout.write('RESULT ' + JSON.stringify({ created, metadata, offsets }) + '\n')
}

main().catch((e) => {
  console.error('kafkajs error:', e && e.stack ? e.stack : e)
  if (e && e.cause) console.error('cause:', e.cause)
  process.exit(1)
})
