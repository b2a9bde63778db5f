//! DHCP wire format. (Skeleton: filled by the DHCP issue.)
