// The lab's Java MQTT edge client: JSSE (the JDK's own TLS, as Paho Java, the HiveMQ client and
// Android apps use it) dials a broker, trusting only the CA certificates of a PEM file, checks the
// broker's host name as Paho Java does (endpoint identification "HTTPS"), sends an MQTT 3.1.1
// CONNECT and reads the CONNACK. It logs through java.util.logging's default layout (the two-line
// record Paho Java's own log has), stack traces included.
//
//   java TlsEdge.java HOST PORT CLIENT_ID CA_PEM [ATTEMPTS]

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.logging.Level;
import java.util.logging.Logger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class TlsEdge {
    private static final Logger LOG = Logger.getLogger("lab.java.TlsEdge");

    public static void main(String[] args) throws Exception {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String clientId = args[2];
        String caFile = args[3];
        int attempts = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        SSLContext context = context(caFile);
        LOG.info("client " + clientId + " starting: broker ssl://" + host + ":" + port + ", Java "
                 + System.getProperty("java.version"));
        for (int attempt = 1; attempt <= attempts; attempt++) {
            LOG.info("connecting to ssl://" + host + ":" + port + " (attempt " + attempt + " of " + attempts + ")");
            try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(host, port)) {
                SSLParameters parameters = socket.getSSLParameters();
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                socket.setSSLParameters(parameters);
                socket.setSoTimeout(5000);
                socket.startHandshake();
                int code = connect(socket.getOutputStream(), socket.getInputStream(), clientId);
                LOG.info("CONNACK return code " + code);
                if (code == 0) {
                    socket.getOutputStream().write(new byte[] {(byte) 0xe0, 0});  // DISCONNECT
                    socket.getOutputStream().flush();
                    LOG.info("disconnected");
                    return;  // the socket closes with a close_notify
                }
            } catch (Exception e) {
                LOG.log(Level.SEVERE, "connection to ssl://" + host + ":" + port + " failed", e);
            }
            Thread.sleep(500);
        }
        LOG.severe("giving up after " + attempts + " connection attempts");
        System.exit(1);
    }

    private static SSLContext context(String caFile) throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        int n = 0;
        try (InputStream in = new FileInputStream(caFile)) {
            for (Certificate cert : factory.generateCertificates(in)) {
                trust.setCertificateEntry("ca" + n++, cert);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }

    /** An MQTT 3.1.1 CONNECT (clean session, keepalive 60), then the CONNACK's return code. */
    private static int connect(OutputStream out, InputStream in, String clientId) throws Exception {
        byte[] id = clientId.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.write(new byte[] {0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60});
        body.write(id.length >> 8);
        body.write(id.length & 0xff);
        body.write(id);
        out.write(0x10);
        out.write(body.size());
        body.writeTo(out);
        out.flush();
        DataInputStream data = new DataInputStream(in);
        byte[] connack = new byte[4];
        data.readFully(connack);
        return connack[3];
    }
}
