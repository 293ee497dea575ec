// Package dnswire walks packed DNS messages without decoding them: the
// names, questions and resource records that the fast paths (do53's EDNS
// work on answers, doh/h2's Cache-Control from TTLs) step over to reach
// what they need. It checks bounds and nothing more; miekg/dns decodes.
package dnswire
