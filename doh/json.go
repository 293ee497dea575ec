package doh

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/doh/h2"
	"github.com/laminadns/lamina/resolver"
)

// The JSON API is the de-facto format of Google's /resolve and Cloudflare's
// application/dns-json: GET ?name=&type=[&cd=][&do=]; the answer's records
// carry their RDATA in presentation format.

type jsonQuestion struct {
	Name string `json:"name"`
	Type uint16 `json:"type"`
}

type jsonRR struct {
	Name string `json:"name"`
	Type uint16 `json:"type"`
	TTL  uint32 `json:"TTL"`
	Data string `json:"data"`
}

type jsonResponse struct {
	Status    int            `json:"Status"`
	TC        bool           `json:"TC"`
	RD        bool           `json:"RD"`
	RA        bool           `json:"RA"`
	AD        bool           `json:"AD"`
	CD        bool           `json:"CD"`
	Question  []jsonQuestion `json:"Question"`
	Answer    []jsonRR       `json:"Answer,omitempty"`
	Authority []jsonRR       `json:"Authority,omitempty"`
	Comment   string         `json:"Comment,omitempty"`
}

// jsonQuery turns ?name=&type= into a DNS query; type may be a number or a
// mnemonic and defaults to A.
func jsonQuery(r *http.Request) (*dns.Msg, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, badRequest(http.StatusMethodNotAllowed, "method not allowed")
	}
	v := r.URL.Query()
	name := v.Get("name")
	if _, ok := dns.IsDomainName(name); !ok || name == "" || len(name) > 253 {
		return nil, badRequest(http.StatusBadRequest, "invalid name")
	}
	qtype := dns.TypeA
	if t := v.Get("type"); t != "" {
		if n, err := strconv.ParseUint(t, 10, 16); err == nil {
			qtype = uint16(n)
		} else if n, ok := dns.StringToType[strings.ToUpper(t)]; ok {
			qtype = n
		} else {
			return nil, badRequest(http.StatusBadRequest, "invalid type")
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.CheckingDisabled = flag(v.Get("cd"))
	m.SetEdns0(resolver.DefaultUDPSize, flag(v.Get("do")))
	return m, nil
}

func flag(s string) bool { return s == "1" || strings.EqualFold(s, "true") }

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	req, err := jsonQuery(r)
	if err != nil {
		s.cfg.Metrics.Dropped(transport(r), do53.DropMalformed)
		s.fail(w, err)
		return
	}
	raw, err := req.Pack()
	if err != nil {
		s.fail(w, badRequest(http.StatusBadRequest, "invalid query"))
		return
	}
	wire, ok := s.answer(r.Context(), s.query(r), raw)
	resp := new(dns.Msg)
	if !ok || resp.Unpack(wire) != nil {
		s.fail(w, badRequest(http.StatusBadRequest, "no answer"))
		return
	}
	out := jsonResponse{
		Status: resp.Rcode, TC: resp.Truncated, RD: resp.RecursionDesired, RA: resp.RecursionAvailable,
		AD: resp.AuthenticatedData, CD: resp.CheckingDisabled,
	}
	for _, q := range resp.Question {
		out.Question = append(out.Question, jsonQuestion{q.Name, q.Qtype})
	}
	out.Answer = jsonRRs(resp.Answer)
	out.Authority = jsonRRs(resp.Ns)
	for _, rr := range resp.Extra {
		if opt, ok := rr.(*dns.OPT); ok {
			for _, o := range opt.Option {
				if ede, ok := o.(*dns.EDNS0_EDE); ok {
					out.Comment = ede.String()
				}
			}
		}
	}
	body, _ := json.Marshal(out)
	ct := mimeJSON
	if strings.Contains(r.Header.Get("Accept"), mimeDNSJSON) {
		ct = mimeDNSJSON
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", h2.CacheControl(wire))
	w.Write(body)
}

func jsonRRs(rrs []dns.RR) []jsonRR {
	var out []jsonRR
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		data := strings.TrimPrefix(rr.String(), h.String())
		out = append(out, jsonRR{Name: h.Name, Type: h.Rrtype, TTL: h.Ttl, Data: data})
	}
	return out
}

func transport(r *http.Request) resolver.Transport {
	if r.ProtoMajor == 3 {
		return resolver.HTTP3
	}
	return resolver.HTTPS
}
