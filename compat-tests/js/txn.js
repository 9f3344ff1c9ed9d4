// kafkajs transactions driven by compat-tests/test_transactions.py.
//
// Env: KFDB_BROKER (host:port), TOPIC (created here, PARTITIONS partitions), IN_TOPIC (created
//      here, records produced non-transactionally), OUT_TOPIC (created here), GROUP (a consumer
//      group reading TOPIC), OFFSETS_GROUP (the group whose offsets the transactions send),
//      TXN_ID (prefix of the transactional ids), PARTITIONS (default 2), WAIT_MS (default 30000).
//
// 1. A producer with transactionalId TXN_ID-main, idempotent, maxInFlightRequests 1: transaction
//    "c1" (committed), "a1" (aborted), "c2" (committed); each sends one value per partition.
// 2. Consume-transform-produce offsets: IN_TOPIC gets IN_COUNT records. Transaction "t1" sends the
//    upper-cased values of the first IN_FIRST records of each partition to OUT_TOPIC and
//    sendOffsets(OFFSETS_GROUP, IN_FIRST per partition), commits; transaction "t2" does the same
//    for the rest (offsets = end) and aborts. admin.fetchOffsets after each.
// 3. Zombie: producer z1 (transactionalId TXN_ID-zombie) opens a transaction and sends "zombie"
//    values; producer z2 with the same transactionalId starts its transaction (InitProducerId,
//    fencing z1), sends "z2" values; z1's commit must reject (its error is recorded); z2 commits.
// 4. A sentinel value per partition of TOPIC (non-transactional), then a kafkajs consumer in GROUP
//    (default isolation: read_committed) reads TOPIC from the beginning until it saw every
//    sentinel, and a second consumer (readUncommitted: true) in GROUP-ru does the same.
// Prints one line RESULT {...}; Python does the checking.
const { Kafka, logLevel } = require('kafkajs')

const broker = process.env.KFDB_BROKER
const topic = process.env.TOPIC
const inTopic = process.env.IN_TOPIC
const outTopic = process.env.OUT_TOPIC
const groupId = process.env.GROUP
const offsetsGroup = process.env.OFFSETS_GROUP
const txnId = process.env.TXN_ID
const partitions = parseInt(process.env.PARTITIONS || '2', 10)
const inCount = parseInt(process.env.IN_COUNT || '20', 10)
const inFirst = parseInt(process.env.IN_FIRST || '4', 10)
const waitMs = parseInt(process.env.WAIT_MS || '30000', 10)

const kafka = new Kafka({
  clientId: 'kfdb-compat-kafkajs-txn',
  brokers: [broker],
  logLevel: logLevel.WARN,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5 }
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function txnProducer (id) {
  return kafka.producer({
    transactionalId: id,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    transactionTimeout: 60000
  })
}

function perPartition (tag) {
  const messages = []
  for (let p = 0; p < partitions; p++) messages.push({ value: `${tag}-p${p}`, partition: p })
  return messages
}

function describeError (e) {
  return { name: e && e.name, type: e && e.type, code: e && e.code, message: String(e && e.message), retriable: e && e.retriable }
}

async function fetchCommitted (admin, group, t) {
  const res = await admin.fetchOffsets({ groupId: group, topics: [t] })
  const out = {}
  for (const x of res) for (const p of x.partitions) out[p.partition] = Number(p.offset)
  return out
}

async function readAll (consumerConf, sentinels) {
  const consumer = kafka.consumer({
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 30000,
    maxWaitTimeInMs: 500,
    retry: { retries: 5 },
    ...consumerConf
  })
  const seen = [] // [partition, offset, value]
  const done = new Set()
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const value = message.value.toString()
      seen.push([partition, Number(message.offset), value])
      if (sentinels.includes(value)) done.add(partition)
    }
  })
  const deadline = Date.now() + waitMs
  while (done.size < partitions) {
    if (Date.now() > deadline) {
      await consumer.disconnect()
      throw new Error(`timed out after ${waitMs} ms reading ${topic} (${consumerConf.groupId}): ` +
        `sentinels seen in ${[...done]}, consumed ${JSON.stringify(seen)}`)
    }
    await sleep(100)
  }
  await consumer.disconnect()
  return seen
}

async function main () {
  const result = {}
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [topic, inTopic, outTopic].map((t) => ({ topic: t, numPartitions: partitions, replicationFactor: 1 })),
    waitForLeaders: true
  })

  // 1. committed, aborted, committed
  const producer = txnProducer(`${txnId}-main`)
  await producer.connect()
  for (const [tag, commit] of [['c1', true], ['a1', false], ['c2', true]]) {
    const txn = await producer.transaction()
    const res = await txn.send({ topic, acks: -1, messages: perPartition(tag) })
    if (res.some((r) => r.errorCode !== 0)) throw new Error(`send ${tag}: ${JSON.stringify(res)}`)
    if (commit) await txn.commit()
    else await txn.abort()
  }

  // 2. offsets in transactions
  const plain = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
  await plain.connect()
  const inMessages = []
  for (let i = 0; i < inCount; i++) inMessages.push({ value: `in-${i}`, partition: i % partitions })
  await plain.send({ topic: inTopic, acks: -1, messages: inMessages })
  const perPart = inCount / partitions
  const rounds = [['t1', true, 0, inFirst], ['t2', false, inFirst, perPart]]
  result.committedAfter = {}
  for (const [tag, commit, from, to] of rounds) {
    const txn = await producer.transaction()
    const out = []
    for (let p = 0; p < partitions; p++) {
      for (let k = from; k < to; k++) out.push({ value: `IN-${k * partitions + p}-${tag}`, partition: p })
    }
    await txn.send({ topic: outTopic, acks: -1, messages: out })
    const offsets = []
    for (let p = 0; p < partitions; p++) offsets.push({ partition: p, offset: String(to) })
    await txn.sendOffsets({ consumerGroupId: offsetsGroup, topics: [{ topic: inTopic, partitions: offsets }] })
    if (commit) await txn.commit()
    else await txn.abort()
    result.committedAfter[tag] = await fetchCommitted(admin, offsetsGroup, inTopic)
  }
  await producer.disconnect()

  // 3. zombie fencing
  const z1 = txnProducer(`${txnId}-zombie`)
  await z1.connect()
  const zt1 = await z1.transaction()
  await zt1.send({ topic, acks: -1, messages: perPartition('zombie') })
  const z2 = txnProducer(`${txnId}-zombie`)
  await z2.connect()
  const zt2 = await z2.transaction() // InitProducerId: fences z1, aborts its transaction
  await zt2.send({ topic, acks: -1, messages: perPartition('z2') })
  result.zombieCommit = 'committed'
  try {
    await zt1.commit()
  } catch (e) {
    result.zombieCommit = describeError(e)
  }
  await zt2.commit()
  await z1.disconnect()
  await z2.disconnect()

  // 4. read back
  const sentinels = perPartition('end')
  await plain.send({ topic, acks: -1, messages: sentinels })
  await plain.disconnect()
  const sentinelValues = sentinels.map((m) => m.value)
  result.readCommitted = await readAll({ groupId }, sentinelValues)
  result.readUncommitted = await readAll({ groupId: `${groupId}-ru`, readUncommitted: true }, sentinelValues)
  await admin.disconnect()
  process.stdout.write('RESULT ' + JSON.stringify(result) + '\n')
}

main().catch((e) => {
  console.error('kafkajs error:', e && e.stack ? e.stack : e)
  if (e && e.cause) console.error('cause:', e.cause)
  process.exit(1)
})
