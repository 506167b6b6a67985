#!/usr/bin/env node
// Offline checks of the deploy bundle, run by tools/check-deploy.sh after it has rendered every
// kustomization under deploy/ into RENDER_DIR (one NAME.yaml per kustomization, NAME = its path
// with "/" as "__"). No cluster is needed:
//   1. every rendered object, and every example under deploy/examples/, validates against the
//      Kubernetes (or cert-manager) API schema of its apiVersion and kind;
//   2. ferry's pods keep the rules docs/deploy.md promises: the Localhost io_uring seccomp profile,
//      no capabilities, non-root, read-only root file system, the TLS Secret mounted as a whole
//      directory, a grace period above preStop + drain timeout, CPU requests = shards, a
//      PodDisruptionBudget, only flags ferry has, every $(VAR) defined; plain transport only in
//      the overlays named plain-*;
//   3. the seccomp profile allows the three io_uring syscalls;
//   4. every metric the Grafana dashboard queries is one ferry exports (names read from src/).
// Prints one line per problem and exits 1 when there is any.
//   node tools/check-deploy.js RENDER_DIR
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const root = path.resolve(__dirname, "..");
const renderDir = process.argv[2];
if (!renderDir) {
    console.error("usage: check-deploy.js RENDER_DIR");
    process.exit(2);
}
const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

// ---- 1. API schemas ------------------------------------------------------------------------
function model(apiVersion, kind) {
    const tries = [`kubernetes-models/${apiVersion}`, `@kubernetes-models/cert-manager/${apiVersion}`];
    for (const mod of tries) {
        try {
            const m = require(mod);
            if (m[kind]) {
                return m[kind];
            }
        } catch (e) {
            if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") {
                throw e;
            }
        }
    }
    return null;
}

function validate(where, obj) {
    const name = `${where} ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const Model = model(obj.apiVersion, obj.kind);
    if (!Model) {
        problem(name, `no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
        return;
    }
    try {
        new Model(obj).validate();
    } catch (e) {
        problem(name, `does not validate: ${e.message.split("\n").slice(0, 5).join("; ")}`);
    }
}

function loadDocs(file) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
    const out = [];
    for (const d of docs) {
        if (d.errors.length) {
            problem(file, `YAML: ${d.errors[0].message}`);
            continue;
        }
        const o = d.toJS();
        if (o) {
            out.push(o);
        }
    }
    return out;
}

const bundles = {};
for (const f of fs.readdirSync(renderDir).filter((f) => f.endsWith(".yaml")).sort()) {
    const name = f.slice(0, -5).split("__").join("/");
    bundles[name] = loadDocs(path.join(renderDir, f));
    if (bundles[name].length === 0) {
        problem(name, "renders no objects");
    }
    for (const o of bundles[name]) {
        validate(name, o);
    }
}
const examplesDir = path.join(root, "deploy/examples");
const examples = fs.existsSync(examplesDir)
    ? fs.readdirSync(examplesDir).filter((f) => f.endsWith(".yaml")).sort()
    : [];
for (const f of examples) {
    for (const o of loadDocs(path.join(examplesDir, f))) {
        validate(`deploy/examples/${f}`, o);
    }
}

// ---- 2. ferry's pods --------------------------------------------------------------------------
const mainCc = fs.readFileSync(path.join(root, "src/cli/main.cc"), "utf8");
const ferryFlags = new Set(
    [...mainCc.matchAll(/ABSL_FLAG\(\s*[^,]+?,\s*([a-z0-9_]+)\s*,/g)].map((m) => m[1].replace(/_/g, "-")),
);
if (ferryFlags.size < 20) {
    problem("src/cli/main.cc", `found only ${ferryFlags.size} ABSL_FLAG definitions`);
}

const seconds = (d) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(d));
    if (!m) {
        return NaN;
    }
    return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
};

function checkFerryPod(where, ds, objs) {
    const spec = ds.spec.template.spec;
    const c = spec.containers.find((x) => x.name === "ferry");
    if (!c) {
        problem(where, "no container named ferry");
        return;
    }
    const sec = spec.securityContext || {};
    const sp = sec.seccompProfile || {};
    if (sp.type !== "Localhost" || sp.localhostProfile !== "profiles/ferry-io-uring.json") {
        problem(where, "seccompProfile must be Localhost profiles/ferry-io-uring.json");
    }
    const csec = c.securityContext || {};
    if (csec.seccompProfile) {
        problem(where, "the container overrides the pod's seccompProfile");
    }
    if (!(csec.capabilities && JSON.stringify(csec.capabilities.drop) === '["ALL"]' && !csec.capabilities.add)) {
        problem(where, "capabilities must be drop: [ALL] and nothing added");
    }
    if (csec.readOnlyRootFilesystem !== true || csec.allowPrivilegeEscalation !== false) {
        problem(where, "needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false");
    }
    if (sec.runAsNonRoot !== true || !(sec.runAsUser > 0)) {
        problem(where, "must run as non-root (runAsNonRoot, runAsUser > 0)");
    }

    // The environment: env entries and the keys of the envFrom ConfigMaps of this bundle.
    const env = {};
    for (const e of c.env || []) {
        env[e.name] = e.value !== undefined ? e.value : e.valueFrom;
    }
    for (const ef of c.envFrom || []) {
        const ref = ef.configMapRef && ef.configMapRef.name;
        const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === ref);
        if (!cm) {
            problem(where, `envFrom ConfigMap ${ref} is not in the bundle`);
            continue;
        }
        Object.assign(env, cm.data || {});
    }
    const args = c.args || [];
    for (const a of args) {
        for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
            if (!(m[1] in env)) {
                problem(where, `${a}: $(${m[1]}) is not defined in the container's environment`);
            }
        }
        const f = /^--([a-z0-9-]+)/.exec(a);
        if (f && !ferryFlags.has(f[1])) {
            problem(where, `${a}: ferry has no flag --${f[1]}`);
        }
    }
    const arg = (flag) => {
        const a = args.find((x) => x.startsWith(`--${flag}=`));
        return a === undefined ? undefined : a.slice(flag.length + 3).replace(/\$\(([A-Za-z0-9_]+)\)/g, (_, v) => env[v]);
    };

    // CPU requests = shards.
    const shards = c.env && c.env.find((e) => e.name === "FERRY_SHARDS");
    const rf = shards && shards.valueFrom && shards.valueFrom.resourceFieldRef;
    if (!(args.includes("--shards=$(FERRY_SHARDS)") && rf && rf.resource === "requests.cpu" && String(rf.divisor) === "1")) {
        problem(where, "--shards must come from requests.cpu (FERRY_SHARDS, divisor 1)");
    }
    if (!(c.resources && c.resources.requests && c.resources.requests.cpu)) {
        problem(where, "no CPU request");
    }

    // Grace period > preStop wait + drain timeout + 5 s.
    const drain = seconds(arg("drain-timeout"));
    const pre = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
    if (!pre) {
        problem(where, "no preStop hook");
    } else if (!pre.command.join(" ").includes("kill -TERM 1")) {
        problem(where, "the preStop hook must start the drain (kill -TERM 1)");
    }
    const sleep = pre ? Number((/sleep (\d+)/.exec(pre.command.join(" ")) || [0, 0])[1]) : 0;
    const grace = spec.terminationGracePeriodSeconds;
    if (!(drain > 0)) {
        problem(where, `--drain-timeout '${arg("drain-timeout")}' is not a duration`);
    } else if (!(grace >= sleep + drain + 5)) {
        problem(where, `terminationGracePeriodSeconds ${grace} < preStop ${sleep} s + drain ${drain} s + 5 s`);
    }

    // Transport: tls everywhere but in the plain-* overlays.
    const transport = arg("tunnel-transport");
    const plainBundle = /(^|\/)plain-[a-z]+$/.test(where.split(" ")[0]);
    if (transport === "plain" && !plainBundle) {
        problem(where, "plain transport outside deploy/overlays/plain-*");
    }
    if (transport !== "plain" && plainBundle) {
        problem(where, "a plain-* overlay that does not run the plain transport");
    }
    if (transport === "tls" || transport === "ws") {
        for (const [flag, file] of [["tls-cert", "tls.crt"], ["tls-key", "tls.key"], ["tls-ca", "ca.crt"]]) {
            if (arg(flag) !== `/etc/ferry/tls/${file}`) {
                problem(where, `--${flag} must be /etc/ferry/tls/${file}`);
            }
        }
        const vm = (c.volumeMounts || []).find((m) => m.mountPath === "/etc/ferry/tls");
        const vol = vm && (spec.volumes || []).find((v) => v.name === vm.name);
        if (!vm || vm.subPath || vm.readOnly !== true || !vol || !vol.secret || vol.secret.secretName !== "ferry-tunnel-tls") {
            problem(where, "Secret ferry-tunnel-tls must be mounted read-only at /etc/ferry/tls, without subPath");
        }
    } else if (transport === "plain") {
        if ((spec.volumes || []).some((v) => v.secret) || args.some((a) => a.startsWith("--tls-"))) {
            problem(where, "the plain transport keeps a certificate flag or the TLS volume");
        }
    } else {
        problem(where, `--tunnel-transport '${transport}'`);
    }

    const selector = ds.spec.selector.matchLabels;
    const pdb = objs.find(
        (o) => o.kind === "PodDisruptionBudget" && JSON.stringify(o.spec.selector.matchLabels) === JSON.stringify(selector),
    );
    if (!pdb) {
        problem(where, "no PodDisruptionBudget selects these pods");
    }
}

let ferryPods = 0;
for (const [name, objs] of Object.entries(bundles)) {
    for (const o of objs) {
        if (o.kind === "DaemonSet" && o.metadata.labels && o.metadata.labels["app.kubernetes.io/name"] === "ferry") {
            ferryPods++;
            checkFerryPod(`${name} DaemonSet/${o.metadata.name}`, o, objs);
        }
        const spec = (o.kind === "Deployment" || o.kind === "DaemonSet") && o.spec.template.spec;
        const sp = spec && spec.securityContext && spec.securityContext.seccompProfile;
        if (sp && sp.type === "Unconfined") {
            problem(`${name} ${o.kind}/${o.metadata.name}`, "seccompProfile Unconfined");
        }
        if (o.kind === "Namespace" && o.metadata.name === "ferry") {
            const level = (o.metadata.labels || {})["pod-security.kubernetes.io/enforce"];
            if (level !== "restricted") {
                problem(`${name} Namespace/ferry`, `Pod Security level '${level}', not restricted`);
            }
        }
    }
}
if (ferryPods === 0) {
    problem(renderDir, "no ferry DaemonSet in any rendered bundle");
}

// ---- 3. the seccomp profile -------------------------------------------------------------------
const profileFile = "deploy/seccomp/ferry-io-uring.json";
try {
    const p = JSON.parse(fs.readFileSync(path.join(root, profileFile), "utf8"));
    const allowed = new Set(
        p.syscalls.filter((s) => s.action === "SCMP_ACT_ALLOW" && !s.args && !s.includes).flatMap((s) => s.names),
    );
    if (p.defaultAction !== "SCMP_ACT_ERRNO") {
        problem(profileFile, "defaultAction must be SCMP_ACT_ERRNO (an allow-list)");
    }
    for (const s of ["io_uring_setup", "io_uring_enter", "io_uring_register", "read", "mmap", "futex"]) {
        if (!allowed.has(s)) {
            problem(profileFile, `does not allow ${s}`);
        }
    }
} catch (e) {
    problem(profileFile, e.message);
}

// ---- 4. the dashboard's metrics ---------------------------------------------------------------
const exported = new Set();
for (const f of fs.readdirSync(path.join(root, "src/admin")).filter((f) => f.endsWith(".cc"))) {
    const s = fs.readFileSync(path.join(root, "src/admin", f), "utf8");
    for (const m of s.matchAll(/FERRY_(COUNTER|GAUGE)\(\s*[a-z_.]+\s*,\s*([a-z0-9_]+)\s*,/g)) {
        exported.add(`ferry_${m[2]}${m[1] === "COUNTER" ? "_total" : ""}`);
    }
    for (const m of s.matchAll(/"(ferry_[a-z0-9_]+)[ {"]/g)) {
        exported.add(m[1]);
    }
}
const dashFile = "deploy/grafana/ferry-dashboard.json";
try {
    const dash = JSON.parse(fs.readFileSync(path.join(root, dashFile), "utf8"));
    const exprs = [];
    (function walk(x) {
        if (Array.isArray(x)) {
            x.forEach(walk);
        } else if (x && typeof x === "object") {
            for (const [k, v] of Object.entries(x)) {
                if ((k === "expr" || k === "query") && typeof v === "string") {
                    exprs.push(v);
                } else {
                    walk(v);
                }
            }
        }
    })(dash);
    if (exprs.length === 0) {
        problem(dashFile, "no queries");
    }
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bferry_[a-z0-9_]+/g)].map((m) => m[0])));
    for (const m of [...used].sort()) {
        if (!exported.has(m)) {
            problem(dashFile, `queries ${m}, which ferry does not export (src/admin)`);
        }
    }
    console.log(`dashboard: ${exprs.length} queries over ${used.size} metrics, all exported (${exported.size} in src/admin)`);
} catch (e) {
    problem(dashFile, e.message);
}

const count = Object.values(bundles).reduce((n, o) => n + o.length, 0);
if (problems.length) {
    problems.forEach((p) => console.log(`FAIL ${p}`));
    process.exit(1);
}
console.log(
    `deploy: ${Object.keys(bundles).length} kustomizations, ${count} objects and ${examples.length} examples ` +
        `valid against the API schemas; ${ferryPods} ferry DaemonSets keep the pod rules`,
);
