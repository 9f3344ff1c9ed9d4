// kafkajs admin operations driven by compat-tests/test_kafkajs.py.
//
// Env: KFDB_BROKER (host:port), TOPIC. Runs createTopics, listTopics, fetchTopicMetadata,
// createPartitions, describeConfigs, alterConfigs, describeCluster, fetchTopicOffsets (after a
// small produce), fetchTopicOffsetsByTimestamp, deleteTopics, listTopics, and prints one line
//   RESULT {...}
// with what each call returned; the Python test asserts on it.
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')

const broker = process.env.KFDB_BROKER
const topic = process.env.TOPIC

async function main () {
  const kafka = new Kafka({
    clientId: 'kfdb-compat-kafkajs-admin',
    brokers: [broker],
    logLevel: logLevel.WARN,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 5 }
  })
  const admin = kafka.admin()
  await admin.connect()
  const r = {}
  r.created = await admin.createTopics({
    topics: [{ topic, numPartitions: 2, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
    timeout: 30000
  })
  r.listedAfterCreate = (await admin.listTopics()).includes(topic)
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  r.partitionsAfterCreate = md.topics[0].partitions.length

  await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }], timeout: 30000 })
  const md2 = await admin.fetchTopicMetadata({ topics: [topic] })
  r.partitionsAfterCreatePartitions = md2.topics[0].partitions.length

  const describe = async () => {
    const d = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
      includeSynonyms: false
    })
    const out = {}
    for (const e of d.resources[0].configEntries) out[e.configName] = e.configValue
    return out
  }
  r.configsAfterCreate = await describe()
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }]
  })
  r.configsAfterAlter = await describe()

  const cluster = await admin.describeCluster()
  r.cluster = { brokers: cluster.brokers.map((b) => `${b.host}:${b.port}`), controller: cluster.controller, clusterId: cluster.clusterId }

  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
  await producer.connect()
  const baseTs = 1733000000000
  await producer.send({
    topic,
    acks: -1,
    messages: [0, 1, 2, 3].map((i) => ({ value: `m${i}`, partition: 1, timestamp: String(baseTs + 1000 * i) }))
  })
  await producer.disconnect()
  r.offsets = (await admin.fetchTopicOffsets(topic))
    .map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
    .sort((a, b) => a.partition - b.partition)
  r.offsetsByTimestamp = (await admin.fetchTopicOffsetsByTimestamp(topic, baseTs + 1500))
    .map((o) => ({ partition: o.partition, offset: o.offset }))
    .sort((a, b) => a.partition - b.partition)

  await admin.deleteTopics({ topics: [topic], timeout: 30000 })
  r.listedAfterDelete = (await admin.listTopics()).includes(topic)
  await admin.disconnect()
  process.stdout.write('RESULT ' + JSON.stringify(r) + '\n')
}

main().catch((e) => {
  console.error('kafkajs error:', e && e.stack ? e.stack : e)
  if (e && e.cause) console.error('cause:', e.cause)
  process.exit(1)
})
