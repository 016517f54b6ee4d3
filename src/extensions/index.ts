// The registry of match and target modules. One module per extension; its file is named after it.
import type { MatchExtension, TargetExtension } from './types';

// -- matches --
import tcpMatch from './tcp';
import udpMatch from './udp';
import icmpMatch from './icmp';
import icmp6Match from './icmp6';
import sctpMatch from './sctp';
import multiportMatch from './multiport';
import conntrackMatch from './conntrack';
import stateMatch from './state';
import addrtypeMatch from './addrtype';
import commentMatch from './comment';
import markMatch from './mark';
import connmarkMatch from './connmark';
import statisticMatch from './statistic';
import limitMatch from './limit';
import iprangeMatch from './iprange';
import lengthMatch from './length';
import ttlMatch from './ttl';
import hlMatch from './hl';
import pkttypeMatch from './pkttype';
import macMatch from './mac';
import physdevMatch from './physdev';
import ipvsMatch from './ipvs';
// part B (H6)
import recentMatch from './recent';
import hashlimitMatch from './hashlimit';
import connlimitMatch from './connlimit';
import ownerMatch from './owner';
import setMatch from './set';
import tcpmssMatch from './tcpmss';
import dscpMatch from './dscp';
import tosMatch from './tos';
import stringMatch from './string';
import u32Match from './u32';
import rtMatch from './rt';
import fragMatch from './frag';
import nfacctMatch from './nfacct';
import timeMatch from './time';
import ecnMatch from './ecn';
import helperMatch from './helper';
import ipv6headerMatch from './ipv6header';
import policyMatch from './policy';
import socketMatch from './socket';
import devgroupMatch from './devgroup';
import cgroupMatch from './cgroup';
import rpfilterMatch from './rpfilter';
import quotaMatch from './quota';
import bpfMatch from './bpf';
import cpuMatch from './cpu';
import realmMatch from './realm';
import espMatch from './esp';
import ahMatch from './ah';
import mhMatch from './mh';
import dccpMatch from './dccp';
import osfMatch from './osf';
import clusterMatch from './cluster';
import connbytesMatch from './connbytes';
import connlabelMatch from './connlabel';

// -- targets --
// MARK, CONNMARK, TCPMSS, TTL, HL, DSCP, TOS, SET: tsc requires file names to differ from the matches' beyond
// case, even on a case-sensitive file system, hence the -target suffix.
import ACCEPTTarget from './ACCEPT';
import DROPTarget from './DROP';
import RETURNTarget from './RETURN';
import REJECTTarget from './REJECT';
import DNATTarget from './DNAT';
import SNATTarget from './SNAT';
import MASQUERADETarget from './MASQUERADE';
import REDIRECTTarget from './REDIRECT';
import NETMAPTarget from './NETMAP';
import MARKTarget from './MARK-target';
import CONNMARKTarget from './CONNMARK-target';
import LOGTarget from './LOG';
import NFLOGTarget from './NFLOG';
import CTTarget from './CT';
import NOTRACKTarget from './NOTRACK';
import CHECKSUMTarget from './CHECKSUM';
import TCPMSSTarget from './TCPMSS-target';
import TTLTarget from './TTL-target';
import HLTarget from './HL-target';
import DSCPTarget from './DSCP-target';
import TOSTarget from './TOS-target';
import SETTarget from './SET-target';
import CLASSIFYTarget from './CLASSIFY';
import TPROXYTarget from './TPROXY';
import NFQUEUETarget from './NFQUEUE';
import TRACETarget from './TRACE';
import AUDITTarget from './AUDIT';
import CONNSECMARKTarget from './CONNSECMARK';
import SECMARKTarget from './SECMARK';
import IDLETIMERTarget from './IDLETIMER';
import LEDTarget from './LED';
import SYNPROXYTarget from './SYNPROXY';
import TEETarget from './TEE';

export const MATCHES: readonly MatchExtension[] = [
  tcpMatch,
  udpMatch,
  icmpMatch,
  icmp6Match,
  sctpMatch,
  multiportMatch,
  conntrackMatch,
  stateMatch,
  addrtypeMatch,
  commentMatch,
  markMatch,
  connmarkMatch,
  statisticMatch,
  limitMatch,
  iprangeMatch,
  lengthMatch,
  ttlMatch,
  hlMatch,
  pkttypeMatch,
  macMatch,
  physdevMatch,
  ipvsMatch,
  recentMatch,
  hashlimitMatch,
  connlimitMatch,
  ownerMatch,
  setMatch,
  tcpmssMatch,
  dscpMatch,
  tosMatch,
  stringMatch,
  u32Match,
  rtMatch,
  fragMatch,
  nfacctMatch,
  timeMatch,
  ecnMatch,
  helperMatch,
  ipv6headerMatch,
  policyMatch,
  socketMatch,
  devgroupMatch,
  cgroupMatch,
  rpfilterMatch,
  quotaMatch,
  bpfMatch,
  cpuMatch,
  realmMatch,
  espMatch,
  ahMatch,
  mhMatch,
  dccpMatch,
  osfMatch,
  clusterMatch,
  connbytesMatch,
  connlabelMatch,
];

export const TARGETS: readonly TargetExtension[] = [
  ACCEPTTarget,
  DROPTarget,
  RETURNTarget,
  REJECTTarget,
  DNATTarget,
  SNATTarget,
  MASQUERADETarget,
  REDIRECTTarget,
  NETMAPTarget,
  MARKTarget,
  CONNMARKTarget,
  LOGTarget,
  NFLOGTarget,
  CTTarget,
  NOTRACKTarget,
  CHECKSUMTarget,
  TCPMSSTarget,
  TTLTarget,
  HLTarget,
  DSCPTarget,
  TOSTarget,
  SETTarget,
  CLASSIFYTarget,
  TPROXYTarget,
  NFQUEUETarget,
  TRACETarget,
  AUDITTarget,
  CONNSECMARKTarget,
  SECMARKTarget,
  IDLETIMERTarget,
  LEDTarget,
  SYNPROXYTarget,
  TEETarget,
];

const matchByName = new Map<string, MatchExtension>(MATCHES.map((m) => [m.name, m]));
const targetByName = new Map<string, TargetExtension>(TARGETS.map((t) => [t.name, t]));

export function findMatch(name: string): MatchExtension | undefined {
  return matchByName.get(name);
}

export function findTarget(name: string): TargetExtension | undefined {
  return targetByName.get(name);
}
