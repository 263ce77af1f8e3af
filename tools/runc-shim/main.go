// runc-shim: a runc wrapper for hosts whose root lacks CAP_SYS_RESOURCE (see
// shared notes: such hosts refuse privileged containers and negative oom_score_adj).
//
// Before exec'ing the real runc it rewrites the OCI spec the caller hands over:
//   - `create`/`run`: <bundle>/config.json (bundle from --bundle/-b, default the working dir)
//   - `exec`: the --process/-p JSON file
//
// dropping CAP_SYS_RESOURCE from every capability set and clamping a negative oomScoreAdj to 0.
// Every other runc call passes through untouched. Registered as dockerd's default runtime, and as
// containerd's runc BinaryName inside kind nodes.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const droppedCapability = "CAP_SYS_RESOURCE"

var realRuncCandidates = []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"}

func main() {
	args := os.Args[1:]
	command, bundle, processFile := parseArgs(args)
	switch command {
	case "create", "run":
		if bundle == "" {
			bundle, _ = os.Getwd()
		}
		must(rewrite(filepath.Join(bundle, "config.json"), fixSpec))
	case "exec":
		if processFile != "" {
			must(rewrite(processFile, fixProcess))
		}
	}
	real := realRunc()
	must(syscall.Exec(real, append([]string{real}, args...), os.Environ()))
}

// parseArgs finds the runc subcommand and the two file options we care about. Global flags come
// before the subcommand; the ones that take a value must be skipped with it.
func parseArgs(args []string) (command, bundle, processFile string) {
	globalsWithValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if command == "" {
			if strings.HasPrefix(a, "-") {
				if globalsWithValue[a] {
					i++
				}
				continue
			}
			command = a
			continue
		}
		switch {
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case a == "--process" || a == "-p":
			if i+1 < len(args) {
				processFile = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--process="):
			processFile = strings.TrimPrefix(a, "--process=")
		}
	}
	return
}

func realRunc() string {
	if p := os.Getenv("SCALESTAGE_REAL_RUNC"); p != "" {
		return p
	}
	self, _ := os.Executable()
	for _, p := range realRuncCandidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && p != self {
			return p
		}
	}
	fmt.Fprintln(os.Stderr, "runc-shim: no runc found; set SCALESTAGE_REAL_RUNC")
	os.Exit(127)
	return ""
}

// rewrite decodes a JSON file with numbers kept verbatim (memory limits exceed float64 precision),
// applies fix and writes the file back only when something changed.
func rewrite(path string, fix func(map[string]any) bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("runc-shim: %s: %w", path, err)
	}
	if !fix(doc) {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func fixSpec(spec map[string]any) bool {
	process, ok := spec["process"].(map[string]any)
	if !ok {
		return false
	}
	return fixProcess(process)
}

func fixProcess(process map[string]any) bool {
	changed := false
	if caps, ok := process["capabilities"].(map[string]any); ok {
		for set, list := range caps {
			names, ok := list.([]any)
			if !ok {
				continue
			}
			kept := names[:0:0]
			for _, n := range names {
				if n != droppedCapability {
					kept = append(kept, n)
				}
			}
			if len(kept) != len(names) {
				caps[set] = kept
				changed = true
			}
		}
	}
	if adj, ok := process["oomScoreAdj"].(json.Number); ok {
		if v, err := adj.Int64(); err == nil && v < 0 {
			process["oomScoreAdj"] = json.Number("0")
			changed = true
		}
	}
	return changed
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
