// nodenet: the pod network of ScaleStage's offline kind node image (kind's kindnetd is not
// buildable from the Go module proxy, so we ship this instead).
//
// One instance runs on every node (a DaemonSet with host networking). It keeps three things true:
//
//   - this node's CNI config (/etc/cni/net.d/10-scalestage.conflist) hands out pod addresses from
//     the node's podCIDR (allocated by kube-controller-manager) with the ptp + host-local plugins,
//     so every pod gets a veth pair and all its traffic is routed through the node;
//   - every other node's podCIDR is routed via that node's InternalIP (all nodes share one L2
//     network: the docker network of the kind cluster);
//   - traffic from pods to anything outside the cluster's pod range is masqueraded.
//
// It talks to the API server with the pod's service account over plain HTTPS (stdlib only): at
// CONTROL_PLANE_ENDPOINT when set (kind patches it into the manifest, so the network comes up
// before kube-proxy has programmed the kubernetes Service), else at KUBERNETES_SERVICE_HOST.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	confName          = "10-scalestage.conflist"
	masqChain         = "SCALESTAGE-MASQ"
)

type config struct {
	nodeName    string
	podSubnet   string // the whole cluster's pod range, e.g. 10.244.0.0/16
	confDir     string
	apiEndpoint string // host:port
	interval    time.Duration
}

type node struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR  string   `json:"podCIDR"`
		PodCIDRs []string `json:"podCIDRs"`
	} `json:"spec"`
	Status struct {
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

func (n node) ipv4PodCIDR() string {
	for _, c := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
		if ip, _, err := net.ParseCIDR(c); err == nil && ip.To4() != nil {
			return c
		}
	}
	return ""
}

func (n node) internalIPv4() string {
	for _, a := range n.Status.Addresses {
		if ip := net.ParseIP(a.Address); a.Type == "InternalIP" && ip != nil && ip.To4() != nil {
			return a.Address
		}
	}
	return ""
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmsgprefix)
	log.SetPrefix("nodenet: ")
	cfg := config{
		nodeName:    os.Getenv("NODE_NAME"),
		podSubnet:   envOr("POD_SUBNET", "10.244.0.0/16"),
		confDir:     envOr("CNI_CONF_DIR", "/etc/cni/net.d"),
		apiEndpoint: os.Getenv("CONTROL_PLANE_ENDPOINT"),
		interval:    5 * time.Second,
	}
	if cfg.apiEndpoint == "" {
		cfg.apiEndpoint = net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	}
	if cfg.nodeName == "" {
		log.Fatal("NODE_NAME is not set (use the downward API: spec.nodeName)")
	}
	if _, _, err := net.ParseCIDR(cfg.podSubnet); err != nil {
		log.Fatalf("POD_SUBNET %q: %v", cfg.podSubnet, err)
	}
	client, err := newAPIClient(cfg.apiEndpoint)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("node %s, cluster pod range %s, API server %s", cfg.nodeName, cfg.podSubnet, cfg.apiEndpoint)
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		log.Printf("warning: enabling ip_forward: %v", err)
	}
	s := &syncer{cfg: cfg, routes: map[string]string{}}
	for {
		nodes, err := client.listNodes()
		if err != nil {
			log.Printf("listing nodes: %v", err)
		} else if err := s.sync(nodes); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(cfg.interval)
	}
}

type syncer struct {
	cfg         config
	routes      map[string]string // podCIDR -> gateway we installed
	confWritten string
	masqDone    bool
}

func (s *syncer) sync(nodes []node) error {
	var errs []string
	seen := map[string]bool{}
	for _, n := range nodes {
		cidr := n.ipv4PodCIDR()
		if n.Metadata.Name == s.cfg.nodeName {
			if cidr == "" {
				errs = append(errs, "this node has no podCIDR yet")
				continue
			}
			if err := s.writeConf(cidr); err != nil {
				errs = append(errs, err.Error())
			}
			continue
		}
		gw := n.internalIPv4()
		if cidr == "" || gw == "" {
			continue
		}
		seen[cidr] = true
		if s.routes[cidr] == gw {
			continue
		}
		if out, err := exec.Command("ip", "route", "replace", cidr, "via", gw).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("route %s via %s: %v: %s", cidr, gw, err, bytes.TrimSpace(out)))
			continue
		}
		s.routes[cidr] = gw
		log.Printf("route %s via %s (node %s)", cidr, gw, n.Metadata.Name)
	}
	for cidr, gw := range s.routes {
		if !seen[cidr] {
			_ = exec.Command("ip", "route", "del", cidr, "via", gw).Run()
			delete(s.routes, cidr)
			log.Printf("route %s via %s removed (node gone)", cidr, gw)
		}
	}
	if !s.masqDone {
		if err := ensureMasquerade(s.cfg.podSubnet); err != nil {
			errs = append(errs, err.Error())
		} else {
			s.masqDone = true
			log.Printf("masquerading traffic from %s to outside it", s.cfg.podSubnet)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// writeConf writes the CNI config for this node's podCIDR (atomically, only when it changes).
func (s *syncer) writeConf(cidr string) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "scalestage",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"mtu":    uplinkMTU(),
				"ipMasq": false,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state", // on tmpfs: a restarted node starts with no stale leases
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"ranges":  []any{[]any{map[string]any{"subnet": cidr}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	data, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(s.cfg.confDir, confName)
	if s.confWritten == string(data) {
		return nil
	}
	if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, data) {
		s.confWritten = string(data)
		return nil
	}
	if err := os.MkdirAll(s.cfg.confDir, 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	s.confWritten = string(data)
	log.Printf("wrote %s for pod range %s", path, cidr)
	return nil
}

// uplinkMTU is the MTU of the interface of the default route (eth0 in a kind node).
func uplinkMTU() int {
	out, err := exec.Command("ip", "-o", "-4", "route", "show", "default").Output()
	dev := "eth0"
	if f := strings.Fields(string(out)); err == nil {
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "dev" {
				dev = f[i+1]
			}
		}
	}
	var mtu int
	if data, err := os.ReadFile(filepath.Join("/sys/class/net", dev, "mtu")); err == nil {
		fmt.Sscanf(string(data), "%d", &mtu)
	}
	if mtu <= 0 {
		mtu = 1500
	}
	return mtu
}

// ensureMasquerade: pods reach the world (and the docker network) with the node's address;
// traffic between pods, anywhere in the cluster, keeps its source address.
func ensureMasquerade(podSubnet string) error {
	rules := [][]string{
		{"-N", masqChain},
	}
	if err := exec.Command("iptables", "-t", "nat", "-S", masqChain).Run(); err != nil {
		if out, err := exec.Command("iptables", append([]string{"-t", "nat"}, rules[0]...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables -N %s: %v: %s", masqChain, err, bytes.TrimSpace(out))
		}
	}
	ensure := [][]string{
		{masqChain, "-d", podSubnet, "-j", "RETURN"},
		{masqChain, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"},
		{masqChain, "-j", "MASQUERADE"},
		{"POSTROUTING", "-s", podSubnet, "-m", "comment", "--comment", "scalestage pod traffic leaving the cluster", "-j", masqChain},
	}
	for _, r := range ensure {
		check := append([]string{"-t", "nat", "-C"}, r...)
		if exec.Command("iptables", check...).Run() == nil {
			continue
		}
		add := append([]string{"-t", "nat", "-A"}, r...)
		if out, err := exec.Command("iptables", add...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(add, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(endpoint string) (*apiClient, error) {
	ca, err := os.ReadFile(filepath.Join(serviceAccountDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("service account CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s/ca.crt", serviceAccountDir)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return &apiClient{base: "https://" + endpoint, http: &http.Client{Transport: transport, Timeout: 10 * time.Second}}, nil
}

func (c *apiClient) listNodes() ([]node, error) {
	// the token is rotated by the kubelet: read it on every call
	token, err := os.ReadFile(filepath.Join(serviceAccountDir, "token"))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, c.base+"/api/v1/nodes", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/nodes: %s", resp.Status)
	}
	var list struct {
		Items []node `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Metadata.Name < list.Items[j].Metadata.Name })
	return list.Items, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
