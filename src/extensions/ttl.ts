// -m ttl (IPv4 only): see util/ttlhl.
import { ttlHlMatch } from './util/ttlhl';

const ttl = ttlHlMatch('ttl', 4, 'TTL');
export default ttl;
