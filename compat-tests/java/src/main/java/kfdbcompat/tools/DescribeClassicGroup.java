package kfdbcompat.tools;

import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ClassicGroupDescription;

/**
 * Prints one classic group as the Java AdminClient describes it (describeClassicGroups, any
 * protocol type, e.g. Connect's): {@code protocol=<type> protocolData=<subprotocol> state=<state>
 * members=<n>}. Used by test_connect.py; the Python clients cannot describe non-consumer groups.
 */
public final class DescribeClassicGroup {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        try (Admin admin = Admin.create(p)) {
            ClassicGroupDescription d = admin.describeClassicGroups(List.of(args[1])).all().get(60, TimeUnit.SECONDS).get(args[1]);
            System.out.println("protocol=" + d.protocol() + " protocolData=" + d.protocolData() + " state=" + d.state()
                    + " members=" + d.members().size());
        }
    }
}
