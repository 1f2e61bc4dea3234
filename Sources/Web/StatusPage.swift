import Foundation

/// The two pages, self-contained (no framework, no external assets): the live status fed by
/// `/events`, and the upload form that posts to `/analyze`.
/// Threading: pure functions.
enum StatusPage {
    static func live(labels: [String], tokenRequired: Bool) -> String {
        let names = "[" + labels.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        return page(title: "emotion-monitor", body: """
        <h1>emotion-monitor <small id="state">connecting…</small></h1>
        <p class="big"><span id="label">—</span> <span id="confidence"></span></p>
        <p id="speech">—</p>
        <p>voice <span id="sex">—</span></p>
        <div id="bars"></div>
        <h2>Last minutes</h2>
        <canvas id="timeline" width="900" height="160"></canvas>
        <p class="small">level <span id="level">—</span> dBFS · normalisation <span id="norm">—</span> ·
          dropped <span id="dropped">0</span> samples · overruns <span id="overruns">0</span> · <a href="analyze">analyse a recording</a></p>
        <script>
        const labels = \(names);
        const colours = ["#888","#6a9","#fc3","#48c","#d33","#a5c","#7a3","#f80"];
        const token = new URLSearchParams(location.search).get("token");
        const bars = document.getElementById("bars");
        for (const [i, l] of labels.entries()) {
          bars.insertAdjacentHTML("beforeend", `<div class="row"><span>${l}</span><div class="bar"><div id="bar-${i}" style="background:${colours[i % 8]}"></div></div><span id="p-${i}"></span></div>`);
        }
        const history = [];
        function draw() {
          const c = document.getElementById("timeline"), g = c.getContext("2d");
          g.clearRect(0, 0, c.width, c.height);
          const w = c.width / 360;  // 3 minutes at a 0.5 s hop
          history.slice(-360).forEach((e, x) => {
            let y = c.height;
            if (!e.voice || !e.probabilities) { g.fillStyle = "#eee"; g.fillRect(x * w, 0, w, c.height); return; }
            labels.forEach((l, i) => {
              const h = e.probabilities[l] * c.height;
              g.fillStyle = colours[i % 8]; g.fillRect(x * w, y - h, w, h); y -= h;
            });
          });
        }
        function show(e) {
          history.push(e);
          if (history.length > 720) history.shift();
          document.getElementById("label").textContent = e.voice ? e.label.toUpperCase() : "silence";
          document.getElementById("confidence").textContent = e.voice && e.confidence != null ? Math.round(e.confidence * 100) + " %" : "";
          document.getElementById("speech").textContent = e.voice ? "speech" : "silence";
          if (e.sex) document.getElementById("sex").textContent = e.sex.label + " " + Math.round(e.sex.confidence * 100) + " %";
          document.getElementById("level").textContent = e.level_dbfs.toFixed(0);
          document.getElementById("norm").textContent = e.norm;
          document.getElementById("dropped").textContent = e.dropped;
          document.getElementById("overruns").textContent = e.overruns;
          labels.forEach((l, i) => {
            const p = e.probabilities ? e.probabilities[l] : 0;
            document.getElementById("bar-" + i).style.width = (p * 100) + "%";
            document.getElementById("p-" + i).textContent = e.probabilities ? Math.round(p * 100) + " %" : "";
          });
          draw();
        }
        // EventSource reconnects by itself (after `retry` ms) when the monitor restarts.
        const source = new EventSource("events" + (token ? "?token=" + encodeURIComponent(token) : ""));
        source.onopen = () => document.getElementById("state").textContent = "live";
        source.onerror = () => document.getElementById("state").textContent = "reconnecting…";
        source.onmessage = m => show(JSON.parse(m.data));
        \(tokenRequired ? "if (!token) document.getElementById(\"state\").textContent = \"open this page with ?token=…\";" : "")
        </script>
        """)
    }

    static func upload(limitBytes: Int) -> String {
        page(title: "emotion-monitor: analyse a recording", body: """
        <h1>Analyse a recording</h1>
        <p>WAV, FLAC, Ogg or MP3, up to \(limitBytes / 1_000_000) MB. It is analysed in memory and a private
        temporary file that is removed at once; nothing is kept.</p>
        <form id="form"><input type="file" id="file" name="file" accept="audio/*"> <button>Analyse</button></form>
        <p class="big" id="result"></p>
        <div id="plot"></div>
        <p class="small"><a href="./">live status</a></p>
        <script>
        const token = new URLSearchParams(location.search).get("token");
        document.getElementById("form").onsubmit = async ev => {
          ev.preventDefault();
          const file = document.getElementById("file").files[0];
          if (!file) return;
          document.getElementById("result").textContent = "analysing…";
          const headers = token ? {"Authorization": "Bearer " + token} : {};
          const response = await fetch("analyze?plot=1", {method: "POST", body: file, headers});
          const r = await response.json();
          if (r.error) { document.getElementById("result").textContent = r.error; document.getElementById("plot").innerHTML = ""; return; }
          document.getElementById("result").textContent = `${r.label} ${Math.round(r.confidence * 100)} % · voice ${r.sex.label} ${Math.round(r.sex.confidence * 100)} % · ${r.duration.toFixed(1)} s`;
          document.getElementById("plot").innerHTML = r.plot;
        };
        </script>
        """)
    }

    private static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
        <title>\(title)</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 2em; max-width: 960px; color: #222; }
        .big { font-size: 2.2em; font-weight: 600; margin: .3em 0; }
        .small { color: #666; font-size: .9em; }
        .row { display: flex; align-items: center; gap: .6em; margin: .15em 0; }
        .row span:first-child { width: 6em; } .row span:last-child { width: 3em; text-align: right; }
        .bar { flex: 1; background: #f2f2f2; height: 1em; } .bar div { height: 100%; width: 0; }
        canvas { width: 100%; border: 1px solid #ddd; }
        </style></head><body>
        \(body)
        </body></html>
        """
    }
}
