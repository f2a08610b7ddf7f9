// Package identity tells who is behind a source address at a moment: device
// names and MACs from DHCP leases, users from RADIUS accounting, and static
// names set by IT staff.
//
// A Table keeps, per address, a time-ordered history of who held it, so that
// an attempt is put on the device and user that had the address at the time
// of the attempt, not on whoever has it when someone looks. Followers keep it
// fed from lease files, an Accounting listener from RADIUS accounting, and
// SetStatic from the names IT staff give. Lookup takes no lock and allocates
// nothing: it reads an immutable snapshot that every change replaces.
//
// Precedence, for each part of a Who:
//   - device name: a static entry for the MAC, then a static entry for the
//     address, then the host name in the lease;
//   - MAC: the lease, then the RADIUS session's Calling-Station-Id;
//   - user: the proxy login of the request (Who.WithProxyLogin), then the
//     RADIUS session, which is dropped when its MAC differs from the lease's
//     (the address has moved on to another device);
//   - group: the user's group, then the static entry for the MAC, then the
//     static entry for the address; empty when none of them says.
package identity
