// -m hl (IPv6 hop limit): see util/ttlhl.
import { ttlHlMatch } from './util/ttlhl';

const hl = ttlHlMatch('hl', 6, 'HL');
export default hl;
