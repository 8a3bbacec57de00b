// The simulated board: a Verilated core top whose UART is bridged to a TCP socket.
//
// Built by sim/board (verilator --cc --exe --build ... --prefix Vtop), so the top's class is
// always Vtop with ports clk, rst (synchronous, active high), uart_rx and uart_tx. 8N1, idle high,
// `--divisor` clock cycles per bit.
//
// The host connects to 127.0.0.1:PORT and sees the raw byte stream, like a serial port. One
// client at a time; later ones wait in the listen backlog. A disconnect keeps the device's state
// (a real board keeps running when the cable is pulled) unless --reset-on-connect is given.
//
// Speed: the device is clocked in slices of --poll-cycles cycles with no syscalls inside a slice;
// the socket is serviced (non-blocking) between slices. With no client connected the simulation
// keeps running but waits --idle-wait-ms between slices so an idle server does not burn a core.
//
// stdout: one line "sim-board listening on 127.0.0.1:PORT" once the socket listens.
// stderr: "sim-board stats: key=value ..." lines (at exit, and every --stats-every seconds).

#include "Vtop.h"
#include "verilated.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

double clock_seconds(clockid_t clock) {
    timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double now_seconds() { return clock_seconds(CLOCK_MONOTONIC); }

struct Options {
    int port = 0;
    uint32_t divisor = 0;
    uint64_t max_cycles = 0;  // 0: run until a signal
    uint32_t poll_cycles = 1024;
    uint32_t reset_cycles = 8;
    int idle_wait_ms = 20;
    double stats_every = 0;  // seconds; 0: only at exit
    bool reset_on_connect = false;
    bool exit_on_stdin_eof = false;
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "sim-board: %s\n"
                 "usage: sim-board --divisor N [--port P] [--max-cycles N] [--poll-cycles N]\n"
                 "                 [--reset-cycles N] [--idle-wait-ms N] [--stats-every SECONDS]\n"
                 "                 [--reset-on-connect] [--exit-on-stdin-eof]\n",
                 msg);
    std::exit(2);
}

uint64_t parse_uint(const char* name, const char* text, uint64_t lo, uint64_t hi) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v < lo || v > hi) {
        std::string m = std::string("bad value for ") + name + ": " + text;
        usage(m.c_str());
    }
    return v;
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("+", 0) == 0) continue;  // +verilator+... plusargs belong to Verilator
        if (a == "--reset-on-connect") {
            o.reset_on_connect = true;
            continue;
        }
        if (a == "--exit-on-stdin-eof") {
            o.exit_on_stdin_eof = true;
            continue;
        }
        if (i + 1 >= argc) usage(("missing value for " + a).c_str());
        const char* v = argv[++i];
        if (a == "--port") o.port = (int)parse_uint("--port", v, 0, 65535);
        else if (a == "--divisor") o.divisor = (uint32_t)parse_uint("--divisor", v, 2, 1u << 30);
        else if (a == "--max-cycles") o.max_cycles = parse_uint("--max-cycles", v, 0, UINT64_MAX);
        else if (a == "--poll-cycles") o.poll_cycles = (uint32_t)parse_uint("--poll-cycles", v, 1, 1u << 30);
        else if (a == "--reset-cycles") o.reset_cycles = (uint32_t)parse_uint("--reset-cycles", v, 1, 1u << 30);
        else if (a == "--idle-wait-ms") o.idle_wait_ms = (int)parse_uint("--idle-wait-ms", v, 0, 10000);
        else if (a == "--stats-every") {
            char* end = nullptr;
            o.stats_every = std::strtod(v, &end);
            if (end == v || *end || o.stats_every < 0) usage("bad value for --stats-every");
        } else usage(("unknown option " + a).c_str());
    }
    if (!o.divisor) usage("--divisor is required (clock cycles per UART bit, as the core was built)");
    return o;
}

// Host -> device: shifts queued bytes onto uart_rx, 8N1, LSB first, back to back.
struct UartSender {
    uint32_t divisor;
    std::deque<uint8_t> queue;
    uint32_t frame = 0;  // start + 8 data + stop bits, bit 0 goes first
    int bits_left = 0;   // bits of `frame` not yet finished, 0 when idle
    uint32_t count = 0;  // cycles left in the current bit
    uint8_t line = 1;

    // Called once per cycle, before the clock edge; returns the level for uart_rx.
    inline uint8_t tick() {
        if (count == 0) {
            if (bits_left > 0) {
                frame >>= 1;
                bits_left--;
            }
            if (bits_left == 0) {
                if (queue.empty()) return line = 1;
                frame = (1u << 9) | ((uint32_t)queue.front() << 1);
                queue.pop_front();
                bits_left = 10;
            }
            line = frame & 1;
            count = divisor;
        }
        count--;
        return line;
    }
    bool busy() const { return bits_left > 0 || !queue.empty(); }
    void clear() {
        queue.clear();
        bits_left = 0;
        count = 0;
        line = 1;
    }
};

// Device -> host: samples uart_tx mid-bit after each clock edge.
struct UartReceiver {
    uint32_t divisor;
    enum { WAIT_IDLE, IDLE, FRAME } state = WAIT_IDLE;
    uint32_t count = 0;
    int bit = 0;  // 0: start bit, 1..8: data, 9: stop
    uint32_t shift = 0;
    uint64_t framing_errors = 0;
    uint64_t bytes = 0;
    std::vector<uint8_t>* out;

    inline void tick(uint8_t level) {
        switch (state) {
        case WAIT_IDLE:  // a line held low (e.g. in reset) is not a start bit until it rises
            if (level) state = IDLE;
            break;
        case IDLE:
            if (!level) {
                state = FRAME;
                bit = 0;
                shift = 0;
                count = divisor / 2;  // first sample in the middle of the start bit
            }
            break;
        case FRAME:
            if (--count) break;
            count = divisor;
            if (bit == 0) {
                if (level) state = IDLE;  // a glitch, not a start bit
                else bit = 1;
            } else if (bit <= 8) {
                shift |= (uint32_t)level << (bit - 1);
                bit++;
            } else {
                if (level) {
                    out->push_back((uint8_t)shift);
                    bytes++;
                    state = IDLE;
                } else {
                    framing_errors++;
                    state = WAIT_IDLE;  // resynchronise on the next high level
                }
            }
            break;
        }
    }
};

struct Stats {
    uint64_t cycles = 0;
    uint64_t bytes_to_device = 0;
    uint64_t bytes_dropped = 0;  // sent by the device while no client was connected
    uint64_t clients = 0;
    double start = 0;
    uint64_t last_cycles = 0;  // at the previous report, for the recent rate
    double last_time = 0;
};

// cycles_per_second is over the run, recent_cycles_per_second since the previous report (the run's
// figure includes time spent waiting for a client). cycles_per_cpu_second counts only the time
// this process ran, so it holds on a machine whose cores are shared.
void print_stats(const char* when, Stats& s, const UartReceiver& r) {
    double now = now_seconds();
    double seconds = now - s.start;
    double rate = seconds > 0 ? s.cycles / seconds : 0;
    double recent = now > s.last_time ? (s.cycles - s.last_cycles) / (now - s.last_time) : 0;
    double cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    double per_cpu = cpu > 0 ? s.cycles / cpu : 0;
    s.last_cycles = s.cycles;
    s.last_time = now;
    std::fprintf(stderr,
                 "sim-board stats: when=%s cycles=%llu seconds=%.3f cycles_per_second=%.0f "
                 "recent_cycles_per_second=%.0f cpu_seconds=%.3f cycles_per_cpu_second=%.0f "
                 "bytes_to_device=%llu bytes_from_device=%llu "
                 "bytes_dropped=%llu framing_errors=%llu clients=%llu\n",
                 when, (unsigned long long)s.cycles, seconds, rate, recent, cpu, per_cpu,
                 (unsigned long long)s.bytes_to_device, (unsigned long long)r.bytes,
                 (unsigned long long)s.bytes_dropped, (unsigned long long)r.framing_errors,
                 (unsigned long long)s.clients);
    std::fflush(stderr);
}

// True once our stdin reaches end of file: the launcher holds a pipe open for our lifetime, so
// this is how we learn that it died without stopping us.
bool stdin_closed() {
    pollfd p{0, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
    char c;
    return read(0, &c, 1) == 0;
}

int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::perror("sim-board: socket");
        std::exit(1);
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // restart while in TIME_WAIT
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (bind(fd, (sockaddr*)&addr, sizeof addr) < 0) {
        std::fprintf(stderr, "sim-board: cannot listen on 127.0.0.1:%d: %s\n", port, std::strerror(errno));
        std::exit(1);
    }
    if (listen(fd, 4) < 0) {
        std::perror("sim-board: listen");
        std::exit(1);
    }
    socklen_t len = sizeof addr;
    getsockname(fd, (sockaddr*)&addr, &len);
    std::printf("sim-board listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse_args(argc, argv);

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a vanished client shows up as EPIPE, not a signal

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(context.get());

    int listen_fd = listen_on(opt.port);
    int client_fd = -1;

    std::vector<uint8_t> from_device;  // received from uart_tx, not yet sent to the client
    size_t from_device_sent = 0;
    const size_t to_device_limit = 64 * 1024;  // TCP flow control holds the host back beyond this
    const size_t from_device_limit = 16 * 1024 * 1024;
    UartSender sender{opt.divisor};
    UartReceiver receiver{opt.divisor};
    receiver.out = &from_device;
    Stats stats;
    stats.start = stats.last_time = now_seconds();
    double next_stats = opt.stats_every > 0 ? stats.start + opt.stats_every : 0;

    uint32_t reset_left = opt.reset_cycles;
    top->uart_rx = 1;
    top->clk = 0;
    top->rst = 1;
    top->eval();

    std::vector<uint8_t> buf(16 * 1024);
    uint64_t slices = 0;
    while (!g_stop) {
        uint64_t slice = opt.poll_cycles;
        if (opt.max_cycles) {
            if (stats.cycles >= opt.max_cycles) break;
            if (opt.max_cycles - stats.cycles < slice) slice = opt.max_cycles - stats.cycles;
        }
        // The hot loop: no syscalls, just the UART shifters and the model.
        for (uint64_t i = 0; i < slice; i++) {
            top->rst = reset_left != 0;
            if (reset_left) reset_left--;
            top->uart_rx = sender.tick();
            top->clk = 1;
            top->eval();
            top->clk = 0;
            top->eval();
            receiver.tick(top->uart_tx);
        }
        stats.cycles += slice;

        // Device -> client.
        if (client_fd < 0) {
            stats.bytes_dropped += from_device.size() - from_device_sent;
            from_device.clear();
            from_device_sent = 0;
        } else if (from_device_sent < from_device.size()) {
            ssize_t n = send(client_fd, from_device.data() + from_device_sent,
                             from_device.size() - from_device_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                from_device_sent += n;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                close(client_fd);
                client_fd = -1;
            }
            if (from_device_sent == from_device.size()) {
                from_device.clear();
                from_device_sent = 0;
            } else if (from_device.size() > from_device_limit) {
                // A client that never reads: drop its oldest bytes rather than grow without bound.
                stats.bytes_dropped += from_device.size() - from_device_sent;
                from_device.clear();
                from_device_sent = 0;
            }
        }

        // Client -> device; a zero-length read is the client going away.
        if (client_fd >= 0 && sender.queue.size() < to_device_limit) {
            size_t room = std::min(buf.size(), to_device_limit - sender.queue.size());
            ssize_t n = recv(client_fd, buf.data(), room, MSG_DONTWAIT);
            if (n > 0) {
                sender.queue.insert(sender.queue.end(), buf.begin(), buf.begin() + n);
                stats.bytes_to_device += n;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                close(client_fd);
                client_fd = -1;
            }
        }

        if (client_fd < 0) {
            if (opt.idle_wait_ms > 0 && !sender.busy()) {
                // Nobody to talk to: run slowly, waking at once when a client connects.
                pollfd p{listen_fd, POLLIN, 0};
                poll(&p, 1, opt.idle_wait_ms);
            }
            int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // replies are small
                client_fd = fd;
                stats.clients++;
                from_device.clear();
                from_device_sent = 0;
                if (opt.reset_on_connect) {
                    sender.clear();
                    receiver.state = UartReceiver::WAIT_IDLE;
                    reset_left = opt.reset_cycles;
                }
            }
        }

        if (opt.exit_on_stdin_eof && (++slices & 63) == 0 && stdin_closed()) {
            std::fprintf(stderr, "sim-board: launcher went away, stopping\n");
            break;
        }
        if (next_stats && now_seconds() >= next_stats) {
            print_stats("periodic", stats, receiver);
            next_stats += opt.stats_every;
        }
    }

    top->final();
    if (client_fd >= 0) close(client_fd);
    close(listen_fd);
    print_stats("exit", stats, receiver);
    return 0;
}
