export { default } from 'stratadisk/edge';
