package kfdbcompat.clients;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs one Java-client scenario against a broker: {@code Main <scenario> <bootstrap>}.
 *
 * <p>A scenario is a public static method {@code void name(String bootstrap)} of one of the
 * scenario classes. It throws on the first check that fails; the exit code is 0 only when it
 * returned, and the last line printed is {@code PASS <scenario>}. Only kafka-clients is used here
 * (no Streams, Connect or broker classes), so the same classes run with an older kafka-clients jar
 * on the classpath.
 */
public final class Main {
    private static final Class<?>[] SCENARIO_CLASSES = {
        ProducerScenarios.class, ConsumerScenarios.class, GroupScenarios.class,
        TransactionScenarios.class, AdminScenarios.class,
    };

    public static void main(String[] args) throws Throwable {
        if (args.length != 2) {
            System.err.println("usage: Main <scenario> <bootstrap>; scenarios: " + scenarios());
            System.exit(2);
        }
        Method m = find(args[0]);
        if (m == null) {
            System.err.println("unknown scenario " + args[0] + "; scenarios: " + scenarios());
            System.exit(2);
        }
        System.out.println("kafka-clients " + clientVersion());
        try {
            m.invoke(null, args[1]);
        } catch (java.lang.reflect.InvocationTargetException e) {
            e.getCause().printStackTrace();
            System.out.println("FAIL " + args[0] + ": " + e.getCause());
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.println("PASS " + args[0]);
        System.out.flush();
        // Client threads of a failed close must not keep the JVM alive.
        Runtime.getRuntime().halt(0);
    }

    static String clientVersion() {
        try (java.io.InputStream in = org.apache.kafka.clients.producer.KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            java.util.Properties p = new java.util.Properties();
            p.load(in);
            return p.getProperty("version");
        } catch (Exception e) {
            return "unknown (" + e + ")";
        }
    }

    private static Method find(String name) {
        for (Class<?> c : SCENARIO_CLASSES) {
            for (Method m : c.getDeclaredMethods()) {
                if (m.getName().equals(name) && Modifier.isStatic(m.getModifiers()) && Modifier.isPublic(m.getModifiers())
                        && m.getParameterCount() == 1 && m.getParameterTypes()[0] == String.class) {
                    return m;
                }
            }
        }
        return null;
    }

    private static List<String> scenarios() {
        List<String> names = new ArrayList<>();
        for (Class<?> c : SCENARIO_CLASSES) {
            for (Method m : c.getDeclaredMethods()) {
                if (Modifier.isStatic(m.getModifiers()) && Modifier.isPublic(m.getModifiers()) && m.getParameterCount() == 1
                        && m.getParameterTypes()[0] == String.class) {
                    names.add(m.getName());
                }
            }
        }
        return names;
    }
}
