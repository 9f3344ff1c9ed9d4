package org.apache.kafka.common.utils;

/**
 * Compatibility shim, not part of Kafka: connect-file 4.4.0 is not served by Maven Central, and
 * the newest that is (4.3.1) reports its version through this class, which kafka-clients 4.4.0
 * moved to {@code org.apache.kafka.common.utils.internals}. The FileStream connectors call only
 * {@code getVersion()}; it answers what the moved class answers.
 */
public final class AppInfoParser {
    private AppInfoParser() {}

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }

    public static String getCommitId() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getCommitId();
    }
}
