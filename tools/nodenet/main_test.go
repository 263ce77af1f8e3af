package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func parseNode(t *testing.T, doc string) node {
	t.Helper()
	var n node
	if err := json.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNodeAddresses(t *testing.T) {
	n := parseNode(t, `{"metadata":{"name":"w1"},"spec":{"podCIDR":"fd00::/64","podCIDRs":["fd00::/64","10.244.2.0/24"]},
		"status":{"addresses":[{"type":"Hostname","address":"w1"},{"type":"InternalIP","address":"fc00::3"},{"type":"InternalIP","address":"172.18.0.3"}]}}`)
	if got := n.ipv4PodCIDR(); got != "10.244.2.0/24" {
		t.Errorf("ipv4PodCIDR = %q", got)
	}
	if got := n.internalIPv4(); got != "172.18.0.3" {
		t.Errorf("internalIPv4 = %q", got)
	}
	if got := parseNode(t, `{"metadata":{"name":"w2"}}`).ipv4PodCIDR(); got != "" {
		t.Errorf("a node without podCIDR gave %q", got)
	}
}

func TestWriteConf(t *testing.T) {
	dir := t.TempDir()
	s := &syncer{cfg: config{confDir: dir}}
	if err := s.writeConf("10.244.1.0/24"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, confName))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Plugins[0].Type != "ptp" || conf.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.244.1.0/24" || conf.Plugins[1].Type != "portmap" {
		t.Errorf("unexpected config: %s", data)
	}
	// unchanged: not rewritten
	info, _ := os.Stat(filepath.Join(dir, confName))
	if err := s.writeConf("10.244.1.0/24"); err != nil {
		t.Fatal(err)
	}
	again, _ := os.Stat(filepath.Join(dir, confName))
	if !info.ModTime().Equal(again.ModTime()) {
		t.Error("config rewritten although unchanged")
	}
}
