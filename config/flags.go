package config

// FlagGroup is the name of the upstream group made from -upstream flags.
const FlagGroup = "flags"

// Overrides are the serve command's flags. They replace, not merge with, what
// the file says, so that flags alone describe a whole setup.
type Overrides struct {
	// Listen replaces the listeners when non-empty.
	Listen []string
	// Upstream, when non-empty, becomes the failover group FlagGroup and the
	// route for "." (replacing any root route in the file).
	Upstream []string
	// Admin replaces admin.address (and enables the admin listener).
	Admin string
}

// Apply puts o into c. Call Validate afterwards; problems in flag values are
// reported with the flag's name instead of a file line.
func (c *Config) Apply(o Overrides) {
	if len(o.Listen) > 0 {
		c.Listeners = nil
		for _, u := range o.Listen {
			c.Listeners = append(c.Listeners, Listener{URL: u, origin: "-listen " + u})
		}
	}
	if len(o.Upstream) > 0 {
		groups := c.UpstreamGroups[:0:0]
		for _, g := range c.UpstreamGroups {
			if g.Name != FlagGroup {
				groups = append(groups, g)
			}
		}
		c.UpstreamGroups = append(groups, UpstreamGroup{Name: FlagGroup, Upstreams: o.Upstream, origin: "-upstream"})
		routes := c.Routes[:0:0]
		for _, r := range c.Routes {
			if r.Zone != "." {
				routes = append(routes, r)
			}
		}
		c.Routes = append(routes, Route{Zone: ".", Group: FlagGroup, origin: "-upstream"})
	}
	if o.Admin != "" {
		c.Admin.Address = o.Admin
		c.Admin.Disable = false
		c.adminFlag = true
	}
}
