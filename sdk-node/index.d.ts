// Types of the public API (index.js). The data shapes (options, messages,
// metadata, descriptions) are generated from the Rust code into
// native.d.ts by `napi build` and re-exported here.

/// <reference types="node" />
import { EventEmitter } from 'node:events'
import type {
  TidelogOptions,
  ProducerOptions,
  ConsumerOptions,
  Message,
  RecordMetadata,
  KafkaMessage,
  PartitionBatch,
  TopicPartition,
  TopicPartitionOffset,
  RebalanceEvent,
  NewTopic,
  TopicDescription,
  ListGroupsResult,
  GroupDescription,
  ResetOffsetsOptions,
  OffsetResetPlan,
  PartitionOffsets,
  PartitionOffset,
} from './native'

export type {
  TidelogOptions,
  ProducerOptions,
  ConsumerOptions,
  Message,
  RecordMetadata,
  KafkaMessage,
  PartitionBatch,
  TopicPartition,
  TopicPartitionOffset,
  RebalanceEvent,
  NewTopic,
  TopicDescription,
  ListGroupsResult,
  GroupDescription,
  ResetOffsetsOptions,
  OffsetResetPlan,
  PartitionOffsets,
  PartitionOffset,
}
export type {
  ConfigEntry,
  PartitionInfo,
  GroupListing,
  GroupMember,
  GroupPartition,
  SeekTarget,
} from './native'

/** Offsets and timestamps are decimal strings; inputs may also be numbers or bigints. */
export type Offset = string | number | bigint

export declare class Tidelog {
  constructor(options: Omit<TidelogOptions, 'brokers'> & { brokers: string[] | string })
  producer(options?: ProducerOptions): Producer
  consumer(options?: ConsumerOptions): Consumer
  admin(): Admin
}

export interface ProducerRecord {
  topic: string
  messages: Message[]
}

export declare class Producer {
  connect(): Promise<void>
  /** Resolves to one metadata entry per message, in order. */
  send(record: ProducerRecord): Promise<RecordMetadata[]>
  sendBatch(batch: { topicMessages: ProducerRecord[] }): Promise<RecordMetadata[]>
  flush(): Promise<void>
  disconnect(): Promise<void>
}

export interface EachMessagePayload {
  topic: string
  partition: number
  message: KafkaMessage
  heartbeat(): Promise<void>
}

export interface Batch {
  topic: string
  partition: number
  messages: KafkaMessage[]
  isEmpty(): boolean
  firstOffset(): string | null
  lastOffset(): string | null
}

export interface EachBatchPayload {
  batch: Batch
  resolveOffset(offset: Offset): void
  heartbeat(): Promise<void>
  commitOffsetsIfNecessary(): Promise<void>
  isRunning(): boolean
  isStale(): boolean
}

export interface RunOptions {
  eachMessage?: (payload: EachMessagePayload) => Promise<void>
  eachBatch?: (payload: EachBatchPayload) => Promise<void>
  /** Resolve every message of a batch when `eachBatch` returns (default true). */
  eachBatchAutoResolve?: boolean
  /** Most records fetched per native call (default 2000). */
  maxBatchSize?: number
  /** Retry after a handler error (default true) instead of stopping. */
  restartOnFailure?: boolean
  /** Delay before that retry (default 1000 ms). */
  retryDelayMs?: number
}

export interface ConsumedRecord {
  topic: string
  partition: number
  message: KafkaMessage
}

export interface SeekOptions {
  topic: string
  /** Omitted: every assigned partition of the topic. */
  partition?: number
  offset?: Offset
  /** ms since the epoch (or a Date): the first record at or after it. */
  timestamp?: number | Date
  to?: 'beginning' | 'end'
}

export declare class Consumer extends EventEmitter {
  readonly groupId: string | null
  connect(): Promise<void>
  subscribe(options: { topics?: string[]; topic?: string; fromBeginning?: boolean }): Promise<void>
  /** Starts processing; resolves once running. Handler errors emit `'crash'`. */
  run(options: RunOptions): Promise<void>
  /** Stops `run` without leaving the group. */
  stop(): Promise<void>
  [Symbol.asyncIterator](): AsyncGenerator<ConsumedRecord, void, undefined>
  messages(options?: { maxBatchSize?: number }): AsyncGenerator<ConsumedRecord, void, undefined>
  seek(options: SeekOptions): Promise<TopicPartitionOffset[]>
  /** Without arguments: commits the position of every owned partition. */
  commitOffsets(offsets?: Array<{ topic: string; partition: number; offset: Offset }>): Promise<void>
  assignment(): Promise<TopicPartition[]>
  positions(): Promise<TopicPartitionOffset[]>
  /** `offset` holds the lag (records behind the log end). */
  lag(): Promise<TopicPartitionOffset[]>
  takeRebalanceEvents(): Promise<RebalanceEvent[]>
  disconnect(): Promise<void>
  on(event: 'crash', listener: (error: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export interface ResetOffsetsRequest extends Omit<ResetOffsetsOptions, 'offset' | 'timestamp'> {
  offset?: Offset
  timestamp?: number | Date
}

export declare class Admin {
  connect(): Promise<void>
  disconnect(): Promise<void>
  createTopics(options: { topics: NewTopic[] }): Promise<TopicDescription[]>
  listTopics(): Promise<string[]>
  describeTopics(topics: string[] | { topics: string[] }): Promise<TopicDescription[]>
  deleteTopics(options: { topics: string[] }): Promise<void>
  alterTopicConfig(options: { topic: string; set?: Record<string, string | number>; remove?: string[] }): Promise<void>
  listGroups(): Promise<ListGroupsResult>
  describeGroups(groupIds: string[]): Promise<GroupDescription[]>
  deleteGroups(groupIds: string[]): Promise<void>
  resetOffsets(options: ResetOffsetsRequest): Promise<OffsetResetPlan[]>
  fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]>
  fetchTopicOffsetsByTimestamp(topic: string, timestamp: number | Date): Promise<PartitionOffset[]>
}

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_REQUEST'
  | 'NOT_SUBSCRIBED'
  | 'CONNECTION_ERROR'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'NOT_LEADER'
  | 'UNKNOWN_TOPIC'
  | 'UNKNOWN_PARTITION'
  | 'TOPIC_ALREADY_EXISTS'
  | 'INVALID_TOPIC_NAME'
  | 'INVALID_CONFIG'
  | 'RECORD_TOO_LARGE'
  | 'OFFSET_OUT_OF_RANGE'
  | 'CORRUPT_BATCH'
  | 'OUT_OF_ORDER_SEQUENCE'
  | 'DUPLICATE_SEQUENCE_NUMBER'
  | 'PRODUCER_FENCED'
  | 'UNKNOWN_GROUP'
  | 'UNKNOWN_MEMBER'
  | 'FENCED_MEMBER_EPOCH'
  | 'NOT_ASSIGNED'
  | 'GROUP_NOT_EMPTY'
  | 'INVALID_GROUP_ID'
  | 'CLOSED'
  | 'DECODE_ERROR'
  | 'BROKER_ERROR'
  | 'UNKNOWN_ERROR'

export declare class TidelogError extends Error {
  readonly code: ErrorCode
  /** Whether the same call may succeed later (the client already retried). */
  readonly retriable: boolean
}
export declare class InvalidArgumentError extends TidelogError {}
export declare class ConnectionError extends TidelogError {}
export declare class UnknownTopicError extends TidelogError {}
export declare class TopicAlreadyExistsError extends TidelogError {}
export declare class InvalidTopicNameError extends TidelogError {}
export declare class InvalidConfigError extends TidelogError {}
export declare class RecordTooLargeError extends TidelogError {}
export declare class OffsetOutOfRangeError extends TidelogError {}
export declare class ProducerError extends TidelogError {}
export declare class GroupError extends TidelogError {}
export declare class ClosedError extends TidelogError {}
export declare function toTidelogError(e: unknown): TidelogError
