package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseArgs(t *testing.T) {
	cmd, bundle, proc := parseArgs([]string{"--root", "/run/r", "--log", "/l", "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "p", "id"})
	if cmd != "create" || bundle != "/b" || proc != "" {
		t.Fatalf("got %q %q %q", cmd, bundle, proc)
	}
	cmd, _, proc = parseArgs([]string{"exec", "--process=/p.json", "id"})
	if cmd != "exec" || proc != "/p.json" {
		t.Fatalf("got %q %q", cmd, proc)
	}
}

func TestRewriteDropsCapabilityAndClampsOOMScore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	in := `{"process":{"oomScoreAdj":-997,"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"]}},"linux":{"resources":{"memory":{"limit":9223372036854775807}}}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(path, fixSpec); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	process := got["process"].(map[string]any)
	caps := process["capabilities"].(map[string]any)
	if !reflect.DeepEqual(caps["bounding"], []any{"CAP_CHOWN"}) || len(caps["effective"].([]any)) != 0 {
		t.Fatalf("capabilities not fixed: %v", caps)
	}
	if process["oomScoreAdj"] != json.Number("0") {
		t.Fatalf("oomScoreAdj = %v", process["oomScoreAdj"])
	}
	limit := got["linux"].(map[string]any)["resources"].(map[string]any)["memory"].(map[string]any)["limit"]
	if limit != json.Number("9223372036854775807") {
		t.Fatalf("large number changed: %v", limit)
	}
}
