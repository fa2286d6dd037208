#include "tools/shmkit/bench/report.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/shmkit/text.h"

namespace shmkit::cli::bench {
namespace {

std::string NsPerOp(double ns) {
  if (ns <= 0) return "-";
  return ns < 100 ? absl::StrFormat("%.1f", ns) : absl::StrFormat("%.0f", ns);
}

std::string Ratio(const VariantResult& r) {
  if (r.ratio <= 0) return "-";
  if (r.variant == r.ratio_base) return "1.00 (base)";
  // Far below 1 (shared memory against a Redis round trip), two decimals
  // would print 0.00: show the significant digits instead.
  if (r.ratio > 0 && r.ratio < 0.01) {
    return absl::StrFormat("%.2gx %s", r.ratio, r.ratio_base);
  }
  return absl::StrFormat("%.2fx %s", r.ratio, r.ratio_base);
}

double TimingOverheadNs(const ReportContext& c) {
  return c.options.sample_every == 0
             ? 0
             : 2 * c.options.clock.call_ns / c.options.sample_every;
}

std::string XmlEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') {
          out += '?';
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

// "1/s", "10/s", "100/s", "1k/s", ... "100G/s".
std::string DecadeLabel(int exponent) {
  static constexpr const char* kSuffix[] = {"", "k", "M", "G", "T"};
  if (exponent < 0) return absl::StrCat("1e", exponent, "/s");
  const int group = std::min(exponent / 3, 4);
  std::string digits = "1";
  for (int i = 0; i < exponent - 3 * group; ++i) digits += '0';
  return absl::StrCat(digits, kSuffix[group], "/s");
}

void LatencyJson(const LatencyHistogram& h, JsonWriter& json) {
  json.BeginObject();
  json.Key("samples").Uint(h.count());
  if (h.count() > 0) {
    json.Key("p50").Double(h.Percentile(0.50));
    json.Key("p90").Double(h.Percentile(0.90));
    json.Key("p99").Double(h.Percentile(0.99));
    json.Key("p999").Double(h.Percentile(0.999));
    json.Key("max").Uint(h.max());
    json.Key("mean").Double(h.mean());
  }
  json.EndObject();
}

}  // namespace

std::string TextHeader(const ReportContext& c) {
  const BenchOptions& o = c.options;
  std::string out = absl::StrFormat("shmkit bench: %d workers on %d CPUs, ",
                                    o.workers, c.cpus);
  if (o.total_ops != 0) {
    absl::StrAppend(&out, o.total_ops, " ops per variant\n");
  } else {
    absl::StrAppend(&out, absl::FormatDuration(o.duration), " per variant\n");
  }
  absl::StrAppendFormat(
      &out,
      "tables:  capacity %d, %d keys preloaded, %d-byte keys, rows\n"
      "         int64+float64+string(64); ttl-churn sessions live %s\n"
      "queues:  %d-byte messages\n",
      o.capacity, o.preload, o.key_bytes, absl::FormatDuration(o.session_ttl),
      o.msg_bytes);
  if (o.sample_every == 0) {
    absl::StrAppend(&out, "latency: not sampled (--sample-every=0)\n");
  } else {
    absl::StrAppendFormat(
        &out,
        "latency: 1 op in %d timed with %s (%.1f ns per reading);\n"
        "         throughput counts every op, so the timing adds %.2f "
        "ns/op\n",
        o.sample_every, o.clock.name, o.clock.call_ns, TimingOverheadNs(c));
  }
  absl::StrAppend(&out,
                  "ns/op = workers x elapsed / ops; VS BASE = ns/op over the "
                  "base's (lower is\nbetter)\n");
  return out;
}

std::string TextTable(const std::vector<VariantResult>& results, bool detail) {
  std::vector<std::vector<std::string>> rows = {{"WORKLOAD", "VARIANT", "OPS/S",
                                                 "NS/OP", "P50", "P99", "MAX",
                                                 "VS BASE"}};
  std::string last_workload;
  std::vector<std::string> notes;
  for (const VariantResult& r : results) {
    const std::string workload =
        r.workload == last_workload ? "" : EscapeBytes(r.workload);
    last_workload = r.workload;
    const std::string label = absl::StrCat(r.workload, "/", r.variant);
    if (r.skipped) {
      rows.push_back({workload, r.variant, "-", "-", "-", "-", "-", "-"});
      notes.push_back(absl::StrCat(label, ": skipped: ", r.skip_reason));
      continue;
    }
    const LatencyHistogram& h = r.latency;
    auto pct = [&h](double q) {
      return h.count() == 0 ? std::string("-") : HumanNanos(h.Percentile(q));
    };
    rows.push_back(
        {workload, r.variant, HumanCount(r.ops_per_s), NsPerOp(r.ns_per_op),
         pct(0.5), pct(0.99),
         h.count() == 0 ? "-" : HumanNanos(static_cast<double>(h.max())),
         Ratio(r)});
    if (detail && r.kinds.size() > 1) {
      for (const KindResult& k : r.kinds) {
        if (k.hist.count() == 0) continue;
        rows.push_back({"", absl::StrCat("  ", k.name), "", "",
                        HumanNanos(k.hist.Percentile(0.5)),
                        HumanNanos(k.hist.Percentile(0.99)),
                        HumanNanos(static_cast<double>(k.hist.max())), ""});
      }
    }
    for (const std::string& n : r.notes) {
      notes.push_back(absl::StrCat(label, ": ", n));
    }
    if (r.errors > 0) {
      notes.push_back(absl::StrCat(
          label, ": ", r.errors, " operations FAILED; first: ", r.first_error));
    }
  }
  std::string out =
      FormatTable(rows, {false, false, true, true, true, true, true, false});
  if (!notes.empty()) {
    absl::StrAppend(&out, "\nnotes:\n");
    for (const std::string& n : notes) absl::StrAppend(&out, "  ", n, "\n");
  }
  return out;
}

std::string Json(const ReportContext& c,
                 const std::vector<VariantResult>& results) {
  const BenchOptions& o = c.options;
  JsonWriter json;
  json.BeginObject();
  json.Key("shmkit_bench").Int(1);
  json.Key("config").BeginObject();
  json.Key("workers").Int(o.workers);
  json.Key("cpus").Int(c.cpus);
  if (o.total_ops != 0) {
    json.Key("ops").Uint(o.total_ops);
  } else {
    json.Key("duration_s").Double(absl::ToDoubleSeconds(o.duration));
  }
  json.Key("table_capacity").Uint(o.capacity);
  json.Key("preload").Uint(o.preload);
  json.Key("key_bytes").Uint(o.key_bytes);
  json.Key("session_ttl_ms").Double(absl::ToDoubleMilliseconds(o.session_ttl));
  json.Key("msg_bytes").Uint(o.msg_bytes);
  json.Key("sample_every").Uint(o.sample_every);
  json.Key("sample_clock").String(o.clock.name);
  json.Key("sample_clock_ns_per_reading").Double(o.clock.call_ns);
  json.Key("timing_overhead_ns_per_op").Double(TimingOverheadNs(c));
  json.Key("boost").Bool(c.boost);
  json.Key("workloads").BeginArray();
  for (const std::string& w : c.workloads) json.Text(w);
  json.EndArray();
  json.Key("total_seconds").Double(c.total_seconds);
  json.EndObject();
  json.Key("results").BeginArray();
  for (const VariantResult& r : results) {
    json.BeginObject();
    json.Key("workload").Text(r.workload);
    json.Key("variant").String(r.variant);
    json.Key("baseline").Bool(r.baseline);
    json.Key("ratio_base").String(r.ratio_base);
    json.Key("skipped").Bool(r.skipped);
    if (r.skipped) {
      json.Key("skip_reason").String(r.skip_reason);
      json.EndObject();
      continue;
    }
    json.Key("workers").Int(r.workers);
    json.Key("ops").Uint(r.ops);
    json.Key("errors").Uint(r.errors);
    if (!r.first_error.empty()) json.Key("first_error").Text(r.first_error);
    json.Key("elapsed_s").Double(r.elapsed_s);
    json.Key("ops_per_s").Double(r.ops_per_s);
    json.Key("ns_per_op").Double(r.ns_per_op);
    if (r.ratio > 0) {
      json.Key("ratio").Double(r.ratio);
    } else {
      json.Key("ratio").Null();
    }
    json.Key("latency_ns");
    LatencyJson(r.latency, json);
    json.Key("per_op").BeginObject();
    for (const KindResult& k : r.kinds) {
      json.Key(k.name);
      LatencyJson(k.hist, json);
    }
    json.EndObject();
    json.Key("extra").BeginObject();
    for (const auto& [name, value] : r.extra) json.Key(name).Double(value);
    json.EndObject();
    json.Key("notes").BeginArray();
    for (const std::string& n : r.notes) json.Text(n);
    json.EndArray();
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return json.Take();
}

std::string Svg(const ReportContext& c,
                const std::vector<VariantResult>& results) {
  constexpr int kWidth = 980;
  constexpr int kPlotLeft = 250;
  constexpr int kPlotRight = 820;
  constexpr int kBar = 16;
  constexpr int kBarGap = 4;
  constexpr int kGroupGap = 16;
  constexpr int kTop = 78;

  double lo = 0, hi = 0;
  for (const VariantResult& r : results) {
    if (r.skipped || r.ops_per_s <= 0) continue;
    lo = lo == 0 ? r.ops_per_s : std::min(lo, r.ops_per_s);
    hi = std::max(hi, r.ops_per_s);
  }
  if (lo <= 0) lo = 1;
  if (hi <= 0) hi = 10;
  const double lo_exp = std::floor(std::log10(lo));
  double hi_exp = std::ceil(std::log10(hi));
  if (hi_exp <= lo_exp) hi_exp = lo_exp + 1;
  auto x_of = [&](double v) {
    const double f = (std::log10(v) - lo_exp) / (hi_exp - lo_exp);
    return kPlotLeft + f * (kPlotRight - kPlotLeft);
  };
  auto color_of = [](const VariantResult& r) -> const char* {
    if (r.variant == "shmkit") return "#1f6feb";
    if (r.variant == "floor") return "#8b949e";
    if (r.variant == "boost") return "#e8833a";
    return "#2da44e";  // raw system calls / raw atomics
  };

  // Layout pass: the y of every bar.
  std::vector<int> ys;
  int y = kTop;
  std::string last;
  for (size_t i = 0; i < results.size(); ++i) {
    if (i > 0 && results[i].workload != last) y += kGroupGap;
    last = results[i].workload;
    ys.push_back(y);
    y += kBar + kBarGap;
  }
  const int plot_bottom = y;
  const int height = plot_bottom + 70;

  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
      kWidth, height, kWidth, height);
  absl::StrAppend(&out, "<title>shmkit bench: operations per second</title>\n",
                  "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" "
                  "fill=\"#ffffff\"/>\n");
  const BenchOptions& o = c.options;
  absl::StrAppendFormat(
      &out,
      "<text x=\"20\" y=\"28\" font-size=\"17\" font-weight=\"bold\">shmkit "
      "bench: operations per second (log scale; longer is faster)</text>\n"
      "<text x=\"20\" y=\"48\" fill=\"#57606a\">%s</text>\n",
      XmlEscape(
          absl::StrCat(o.workers, " workers on ", c.cpus, " CPUs, ",
                       o.total_ops != 0 ? absl::StrCat(o.total_ops, " ops")
                                        : absl::FormatDuration(o.duration),
                       " per variant; table capacity ", o.capacity, ", ",
                       o.preload, " preloaded, ", o.key_bytes, "-byte keys")));
  // Decade grid lines and labels.
  for (double e = lo_exp; e <= hi_exp + 1e-9; e += 1) {
    const double x = x_of(std::pow(10.0, e));
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                          "stroke=\"#d0d7de\" stroke-width=\"1\"/>\n",
                          x, kTop - 8, x, plot_bottom);
    absl::StrAppendFormat(&out,
                          "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                          "fill=\"#57606a\">%s</text>\n",
                          x, plot_bottom + 16,
                          DecadeLabel(static_cast<int>(e)));
  }
  last.clear();
  for (size_t i = 0; i < results.size(); ++i) {
    const VariantResult& r = results[i];
    const int by = ys[i];
    if (r.workload != last) {
      absl::StrAppendFormat(
          &out, "<text x=\"12\" y=\"%d\" font-weight=\"bold\">%s</text>\n",
          by + kBar - 4, XmlEscape(EscapeBytes(r.workload)));
      last = r.workload;
    }
    absl::StrAppendFormat(
        &out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n",
        kPlotLeft - 8, by + kBar - 4, XmlEscape(r.variant));
    if (r.skipped || r.ops_per_s <= 0) {
      absl::StrAppendFormat(
          &out,
          "<text x=\"%d\" y=\"%d\" fill=\"#57606a\" "
          "font-style=\"italic\">%s</text>\n",
          kPlotLeft + 4, by + kBar - 4,
          XmlEscape(r.skipped ? r.skip_reason : "no operations"));
      continue;
    }
    const double x_end = std::max<double>(kPlotLeft + 1, x_of(r.ops_per_s));
    absl::StrAppendFormat(
        &out,
        "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
        "fill=\"%s\"><title>%s</title></rect>\n",
        kPlotLeft, by, x_end - kPlotLeft, kBar, color_of(r),
        XmlEscape(absl::StrFormat("%s / %s: %.0f ops/s, %.1f ns/op",
                                  EscapeBytes(r.workload), r.variant,
                                  r.ops_per_s, r.ns_per_op)));
    std::string label = absl::StrCat(HumanCount(r.ops_per_s), "/s");
    if (r.ratio > 0 && r.variant != r.ratio_base) {
      absl::StrAppendFormat(&label, "  (%.2fx %s)", r.ratio, r.ratio_base);
    }
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%d\">%s</text>\n",
                          x_end + 6, by + kBar - 4, XmlEscape(label));
  }
  // Legend.
  const struct {
    const char* name;
    const char* color;
  } legend[] = {{"shmkit", "#1f6feb"},
                {"floor (locked 64-byte copy)", "#8b949e"},
                {"boost::unordered_map + interprocess_mutex", "#e8833a"},
                {"raw system calls / atomics", "#2da44e"}};
  int lx = 20;
  const int ly = plot_bottom + 42;
  for (const auto& l : legend) {
    absl::StrAppendFormat(&out,
                          "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" "
                          "fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\">%s</text>\n",
                          lx, ly, l.color, lx + 16, ly + 10, XmlEscape(l.name));
    lx += 40 + static_cast<int>(std::string(l.name).size()) * 7;
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace shmkit::cli::bench
