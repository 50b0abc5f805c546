// A minimal recsvc client in Java 17: ask for a user's feed, then report that the user viewed
// the first video. One file, JDK only; run it without compiling:
//
//     RECSVC_URL=http://127.0.0.1:8000 RECSVC_APP_KEY=<an app key> java Client.java u00042
//
// Exit status: 0 done, 1 a request failed (after its retries), 2 bad usage.
// The small JSON reader at the end keeps the file free of dependencies; a real backend would
// use its JSON library (Jackson, Gson, ...) instead.

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

public class Client {
    static final int ATTEMPTS = 5; // one try and up to four retries
    static final Set<Integer> RETRY_STATUSES = Set.of(429, 502, 503, 504); // 502, 504: a proxy
    static final Duration TIMEOUT = Duration.ofSeconds(5);

    // HTTP/1.1: by default the JDK client offers an HTTP/2 upgrade ("Upgrade: h2c") on http://
    // URLs, and the service then receives a POST without its body (422 "body: Field required").
    static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(TIMEOUT)
            .build();

    static class RequestFailed extends Exception {
        RequestFailed(String message) {
            super(message);
        }
    }

    public static void main(String[] args) throws InterruptedException {
        String base = System.getenv().getOrDefault("RECSVC_URL", "").replaceAll("/+$", "");
        String key = System.getenv().getOrDefault("RECSVC_APP_KEY", "");
        if (args.length != 1 || base.isEmpty() || key.isEmpty()) {
            System.err.println("usage: java Client.java USER_ID (with RECSVC_URL and RECSVC_APP_KEY set)");
            System.exit(2);
        }
        String userId = args[0];
        try {
            String query = "user_id=" + URLEncoder.encode(userId, StandardCharsets.UTF_8) + "&n=5";
            Map<String, Object> feed = object(call("GET", base + "/v1/feed?" + query, key, null));
            String requestId = (String) feed.get("request_id");
            System.out.printf("feed %s for %s: model %s, source %s, variant %s, degraded %s%n",
                    requestId, feed.get("user_id"), feed.get("model_version"), feed.get("source"),
                    feed.get("variant"), feed.get("degraded"));
            List<Object> items = list(feed.get("items"));
            for (Object entry : items) {
                Map<String, Object> item = object(entry);
                Map<String, Object> card = object(item.get("product"));
                String shown = card == null ? "no product" : card.get("product_id") + " '" + card.get("name") + "'";
                if (card != null && card.get("disclosure") != null) {
                    shown += " [" + card.get("disclosure") + "]";
                }
                System.out.printf("  %2d. %s  %s%n", ((Number) item.get("rank")).intValue(), item.get("video_id"), shown);
            }
            if (items.isEmpty()) {
                System.out.println("empty feed: nothing to report");
                return;
            }
            // The user watched 80% of the first video. The event carries the feed's request_id;
            // its event_id is made once, here, so a retry cannot count it twice.
            String eventId = UUID.randomUUID().toString().replace("-", "");
            String videoId = (String) object(items.get(0)).get("video_id");
            String event = "{\"event_id\":" + quote(eventId)
                    + ",\"ts\":" + quote(Instant.now().truncatedTo(ChronoUnit.MILLIS).toString())
                    + ",\"user_id\":" + quote(userId)
                    + ",\"item_id\":" + quote(videoId)
                    + ",\"item_type\":\"video\",\"action\":\"view\",\"watch_ratio\":0.8"
                    + ",\"request_id\":" + quote(requestId) + "}";
            Map<String, Object> answer =
                    object(call("POST", base + "/v1/events", key, "{\"events\":[" + event + "]}"));
            long accepted = ((Number) answer.get("accepted")).longValue();
            long duplicates = ((Number) answer.get("duplicates")).longValue();
            System.out.printf("view event %s (request_id %s): accepted %d, duplicates %d%n",
                    eventId, requestId, accepted, duplicates);
            System.exit(accepted + duplicates == 1 ? 0 : 1);
        } catch (RequestFailed error) {
            System.err.println("failed: " + error.getMessage());
            System.exit(1);
        }
    }

    /** Send one request, retrying 429, 503 and network errors; the decoded JSON answer. */
    static Object call(String method, String url, String key, String body)
            throws RequestFailed, InterruptedException {
        for (int attempt = 1; ; attempt++) {
            HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url))
                    .timeout(TIMEOUT)
                    .header("Authorization", "Bearer " + key)
                    .header("Accept", "application/json");
            if (body == null) {
                request.GET();
            } else {
                request.header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
            }
            double wait;
            String reason;
            try {
                HttpResponse<String> response =
                        HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
                int status = response.statusCode();
                if (status >= 200 && status < 300) {
                    return new Json(response.body()).value();
                }
                if (!RETRY_STATUSES.contains(status) || attempt == ATTEMPTS) {
                    throw new RequestFailed(method + " " + url + ": HTTP " + status + " " + response.body());
                }
                wait = backoff(attempt, response.headers().firstValue("Retry-After"));
                reason = "HTTP " + status + " " + response.body();
            } catch (IOException error) {
                // Safe to retry: a feed is a read, and events are deduplicated by event_id.
                if (attempt == ATTEMPTS) {
                    throw new RequestFailed(method + " " + url + ": " + error);
                }
                wait = backoff(attempt, Optional.empty());
                reason = error.toString();
            }
            System.err.printf("%s %s: %s; retry in %.1fs%n", method, url, reason, wait);
            Thread.sleep((long) (wait * 1000));
        }
    }

    /** The server's Retry-After when it gives one, else 0.5 s, 1 s, 2 s, ... up to 8 s; plus jitter. */
    static double backoff(int attempt, Optional<String> retryAfter) {
        double base = retryAfter.filter(v -> v.strip().matches("\\d+"))
                .map(v -> Double.parseDouble(v.strip()))
                .orElse(Math.min(0.5 * Math.pow(2, attempt - 1), 8.0));
        return base + ThreadLocalRandom.current().nextDouble(0, 0.25 * base + 0.1);
    }

    static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(Object value) {
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Object value) {
        return (List<Object>) value;
    }

    /** Just enough JSON: objects, arrays, strings, numbers, true, false, null. */
    static final class Json {
        private final String text;
        private int at;

        Json(String text) {
            this.text = text;
        }

        Object value() {
            Object value = read();
            skipSpace();
            if (at != text.length()) {
                throw error("trailing characters");
            }
            return value;
        }

        private Object read() {
            skipSpace();
            if (at >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(at);
            if (c == '{') {
                Map<String, Object> map = new LinkedHashMap<>();
                at++;
                skipSpace();
                if (peek('}')) {
                    return map;
                }
                do {
                    skipSpace();
                    String name = string();
                    skipSpace();
                    expect(':');
                    map.put(name, read());
                    skipSpace();
                } while (peek(','));
                expect('}');
                return map;
            }
            if (c == '[') {
                List<Object> list = new ArrayList<>();
                at++;
                skipSpace();
                if (peek(']')) {
                    return list;
                }
                do {
                    list.add(read());
                    skipSpace();
                } while (peek(','));
                expect(']');
                return list;
            }
            if (c == '"') {
                return string();
            }
            for (String word : new String[] {"true", "false", "null"}) {
                if (text.startsWith(word, at)) {
                    at += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
            if (start == at) {
                throw error("unexpected character");
            }
            return Double.valueOf(text.substring(start, at));
        }

        private String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (true) {
                if (at >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(at++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char escaped = text.charAt(at++);
                switch (escaped) {
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        at += 4;
                    }
                    default -> out.append(escaped); // " \ /
                }
            }
        }

        private void skipSpace() {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
        }

        private boolean peek(char c) {
            if (at < text.length() && text.charAt(at) == c) {
                at++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("bad JSON at " + at + ": " + what);
        }
    }
}
